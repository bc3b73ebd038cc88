"""Where notices go: a signed webhook, an e-mail, or a structured log event."""

from __future__ import annotations

import email.utils
import os
import re
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import orjson
import structlog

from connector.crypto.jws import Signer
from connector.errors import ConfigError
from connector.notify.notice import Notice
from connector.notify.render import clean, notice_text
from connector.peers.client import transport_failure
from connector.peers.trust import fingerprint_bytes
from connector.settings.config import EmailChannel, LogChannel, WebhookChannel

log = structlog.get_logger(__name__)

NOTICE_TYP = "ncb-notice+jwt"
JOSE_MEDIA_TYPE = "application/jose"
USER_AGENT = "ncb-connector"
# A receiver under maintenance often answers 401, 403 or 404 for a while: keep trying.
# Only answers that say the notice itself is unacceptable make it dead at once.
PERMANENT_HTTP = frozenset({400, 405, 410, 411, 413, 414, 415, 422})
MAX_RETRY_AFTER = 86400.0


class DeliveryError(Exception):
    """A notice was not delivered. `retryable` says whether trying again later may help;
    `retry_after` is the receiver's own hint in seconds (HTTP Retry-After), if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


@runtime_checkable
class Channel(Protocol):
    """Delivers one notice or raises DeliveryError."""

    name: str

    async def send(self, notice: Notice) -> None: ...


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def notice_json(body: Mapping[str, Any], *, indent: bool = False) -> bytes:
    return orjson.dumps(
        dict(body), default=_json_default, option=orjson.OPT_INDENT_2 if indent else 0
    )


def _origin(url: str) -> str:
    """scheme://host[:port] only: a webhook URL's path or query may hold a secret token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


# --- webhook --------------------------------------------------------------------------


def notice_claims(notice: Notice, *, node: str, now: float) -> dict[str, Any]:
    """The JWT claims set a webhook receives (signed, typ ncb-notice+jwt)."""
    return {
        "iss": node,
        "iat": int(now),
        "jti": notice.id,
        "kind": notice.kind,
        "enquiry": notice.enquiry,
        "notice": notice.body,
    }


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER)


class WebhookSender:
    """POSTs the notice as a compact JWS signed with the node's key, over TLS pinned to the
    receiver's certificate fingerprint (or CA-verified TLS; plain http only if insecure)."""

    __slots__ = ("_tls", "_warned", "clock", "config", "name", "node", "session", "signer")

    def __init__(
        self,
        name: str,
        *,
        config: WebhookChannel,
        signer: Signer,
        node: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], float],
    ) -> None:
        scheme = urlsplit(config.url).scheme.lower()
        where = f"notifications.channels.{name}"
        if scheme == "http" and not config.insecure:
            raise ConfigError(
                f"{where}: a plain http:// url needs insecure: true "
                "(tests and labs only); use https://"
            )
        if scheme == "http" and config.tls_fingerprint:
            raise ConfigError(f"{where}: tls_fingerprint needs an https:// url")
        self._tls: aiohttp.Fingerprint | bool = True  # https without a pin: CA verification
        if config.tls_fingerprint:
            try:
                self._tls = aiohttp.Fingerprint(fingerprint_bytes(config.tls_fingerprint))
            except ValueError as exc:
                raise ConfigError(
                    f"{where}: tls_fingerprint is not a SHA-256 fingerprint "
                    "(64 hex digits, colons allowed)"
                ) from exc
        self.name = name
        self.config = config
        self.signer = signer
        self.node = node
        self.session = session
        self.clock = clock
        self._warned = scheme != "http"

    def token(self, notice: Notice) -> bytes:
        claims = notice_claims(notice, node=self.node, now=self.clock())
        payload = orjson.dumps(claims, default=_json_default)
        return self.signer.sign_compact(payload, typ=NOTICE_TYP)

    async def send(self, notice: Notice) -> None:
        url = self.config.url
        if not self._warned:
            self._warned = True
            log.warning(
                "notify_webhook_insecure",
                channel=self.name,
                url=_origin(url),
                detail="plain HTTP: for tests and labs only",
            )
        headers = {
            "Content-Type": JOSE_MEDIA_TYPE,
            "Idempotency-Key": notice.id,
            "User-Agent": USER_AGENT,
        }
        try:
            async with self.session.post(
                url,
                data=self.token(notice),
                headers=headers,
                ssl=self._tls,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            ) as resp:
                status, reason = resp.status, resp.reason or ""
                retry_after = resp.headers.get("Retry-After")
        except aiohttp.ClientConnectorCertificateError as exc:
            # A receiver checked against the system's CAs, not a pin: say what failed there.
            why = getattr(exc.certificate_error, "verify_message", None) or "not verified"
            raise DeliveryError(
                f"the TLS certificate of {_origin(url)} is not trusted: {clean(why)}"
            ) from exc
        except TimeoutError as exc:
            raise DeliveryError(
                f"no answer from {_origin(url)} within {self.config.timeout:g} s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # In the words peers' failures are said in: one wording for one failure.
            why = transport_failure(exc, other="the receiver")
            raise DeliveryError(f"cannot deliver to {_origin(url)}: {why}") from exc
        if 200 <= status < 300:
            return
        message = f"webhook answered {status}" + (f" {clean(reason, limit=60)}" if reason else "")
        if status >= 400 and status not in PERMANENT_HTTP:
            raise DeliveryError(
                message, status=status, retry_after=_retry_after(retry_after, self.clock())
            )
        if 300 <= status < 400:
            message += " (redirects are not followed: configure the final url)"
        raise DeliveryError(message, retryable=False, status=status)


# --- e-mail ---------------------------------------------------------------------------


def read_password(config: EmailChannel, *, base_dir: Path, env: Mapping[str, str]) -> str | None:
    """The SMTP password from `password_file` (relative to base_dir) or from the systemd
    credential `password_credential` ($CREDENTIALS_DIRECTORY/<name>); None if neither is set."""
    if config.password_file is not None and config.password_credential is not None:
        raise ConfigError("set only one of password_file and password_credential")
    if config.password_file is not None:
        path = config.password_file
        path = path if path.is_absolute() else base_dir / path
        what = f"password_file {path}"
    elif config.password_credential is not None:
        cred = config.password_credential
        if not cred or "/" in cred or cred in (".", ".."):
            raise ConfigError(f"password_credential {cred!r} is not a credential name")
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConfigError(
                f"password_credential {cred}: $CREDENTIALS_DIRECTORY is not set; "
                f"add LoadCredential={cred}:/path/to/file (or "
                "SetCredentialEncrypted=) to the service unit"
            )
        path = Path(directory) / cred
        what = f"password_credential {cred} ({path})"
    else:
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text") from exc
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"{what} is empty")
    return text


_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def message_id(notice: Notice, node: str) -> str:
    """The same for every attempt at the same notice, so duplicates can be spotted."""
    left = _MSGID_UNSAFE.sub("-", notice.id).strip(".") or "notice"
    right = _MSGID_UNSAFE.sub("-", node.lower()).strip(".") or "node"
    return f"<{left}@{right}.ncb-connector.invalid>"


def email_message(notice: Notice, *, node: str, sender: str, to: list[str]) -> EmailMessage:
    """multipart/mixed: the readable text, then the notice body as notice.json."""
    subject, text = notice_text(notice)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(notice.created_at, usegmt=True)
    msg["Message-ID"] = message_id(notice, node)
    msg["X-NCB-Notice-Id"] = clean(notice.id)
    msg["X-NCB-Notice-Kind"] = notice.kind
    if notice.enquiry:
        msg["X-NCB-Enquiry"] = clean(notice.enquiry)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    msg.set_content(text)
    msg.add_attachment(
        notice_json(notice.body, indent=True),
        maintype="application",
        subtype="json",
        filename="notice.json",
    )
    return msg


def _smtp_error(exc: aiosmtplib.SMTPResponseException, what: str) -> DeliveryError:
    text = clean(exc.message, limit=120)
    return DeliveryError(
        f"SMTP server refused {what}: {exc.code} {text}",
        retryable=not 500 <= exc.code < 600,
        status=exc.code,
    )


class EmailSender:
    """Sends the notice as an e-mail over SMTP (STARTTLS, implicit TLS or plain)."""

    __slots__ = ("_warned", "config", "name", "node", "password", "tls_context")

    def __init__(
        self,
        name: str,
        *,
        config: EmailChannel,
        node: str,
        password: str | None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if config.username is not None and password is None:
            raise ConfigError(
                f"notifications.channels.{name}: username is set but no "
                "password_file or password_credential"
            )
        self.name = name
        self.config = config
        self.node = node
        self.password = password
        # None: the system's CAs and hostname checking; tests pass one trusting their cert.
        self.tls_context = tls_context
        self._warned = config.security != "none" or config.username is None

    def message(self, notice: Notice) -> EmailMessage:
        return email_message(
            notice, node=self.node, sender=self.config.sender, to=list(self.config.to)
        )

    async def send(self, notice: Notice) -> None:
        c = self.config
        if not self._warned:
            self._warned = True
            log.warning(
                "notify_email_login_without_tls",
                channel=self.name,
                host=c.host,
                detail="the SMTP password crosses the network in clear",
            )
        where = f"{c.host}:{c.port}"
        try:
            refused, _ = await aiosmtplib.send(
                self.message(notice),
                hostname=c.host,
                port=c.port,
                username=c.username,
                password=self.password if c.username else None,
                use_tls=c.security == "tls",
                start_tls=c.security == "starttls",
                tls_context=self.tls_context,
                timeout=c.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            first = exc.recipients[0] if exc.recipients else None
            detail = f": {first.code} {clean(first.message, limit=120)}" if first else ""
            raise DeliveryError(
                f"SMTP server refused every recipient{detail}",
                retryable=any(not 500 <= code < 600 for code in codes),
                status=first.code if first else None,
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise _smtp_error(exc, "the login") from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            raise _smtp_error(exc, f"the sender {clean(exc.sender)}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _smtp_error(exc, "the message") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise DeliveryError(
                f"no answer from SMTP server {where} within {c.timeout:g} s"
            ) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(
                f"SMTP server {where}: {clean(exc.message, limit=120)}", retryable=False
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            cause = exc if isinstance(exc, OSError) and exc.errno else exc.__cause__
            if isinstance(cause, OSError) and cause.errno:
                text = os.strerror(cause.errno)
            elif isinstance(exc, aiosmtplib.SMTPException):
                text = exc.message
            else:
                text = str(exc) or type(exc).__name__
            raise DeliveryError(
                f"cannot deliver to SMTP server {where}: {clean(text, limit=160)}"
            ) from exc
        deferred = {rcpt: r for rcpt, r in refused.items() if not 500 <= r.code < 600}
        if deferred:
            rcpt, r = next(iter(deferred.items()))
            raise DeliveryError(
                f"SMTP server deferred {clean(rcpt)}: {r.code} {clean(r.message, limit=120)}",
                status=r.code,
            )
        if refused:
            log.warning(
                "notify_email_recipients_refused",
                channel=self.name,
                notice=notice.id,
                refused={k: f"{v.code} {clean(v.message)}" for k, v in refused.items()},
            )


# --- log ------------------------------------------------------------------------------


class LogSender:
    """A structured log event per notice; never fails."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, notice: Notice) -> None:
        body = notice.body if isinstance(notice.body, Mapping) else {}
        if notice.kind == "enquiry":
            asked_by = body.get("asked_by")
            asked_by = asked_by if isinstance(asked_by, Mapping) else {}
            checks = body.get("checks")
            brief = [
                {
                    "id": c.get("id"),
                    "category": c.get("category"),
                    "status": c.get("status"),
                    "level": c.get("answered_level"),
                    "rule": c.get("rule"),
                    "matched": list(c.get("matched") or []),
                }
                for c in (checks if isinstance(checks, list | tuple) else [])
                if isinstance(c, Mapping)
            ]
            log.info(
                "foreign_enquiry",
                channel=self.name,
                notice=notice.id,
                enquiry=notice.enquiry or body.get("enquiry"),
                at=body.get("at"),
                peer=asked_by.get("node"),
                agency_kind=asked_by.get("agency_kind"),
                sub=asked_by.get("sub"),
                purpose=asked_by.get("purpose"),
                case=asked_by.get("case"),
                checks=brief,
                why=list(body.get("why_notified") or []),
            )
        elif notice.kind == "digest":
            log.info(
                "notification_digest",
                channel=self.name,
                notice=notice.id,
                since=body.get("since"),
                until=body.get("until"),
                enquiries=body.get("enquiries"),
                hits=body.get("hits"),
                denials=body.get("denials"),
                by_peer=dict(body.get("by_peer") or {}),
                by_category=dict(body.get("by_category") or {}),
            )
        elif notice.kind == "approval":
            asked_by = body.get("asked_by")
            asked_by = asked_by if isinstance(asked_by, Mapping) else {}
            log.info(
                str(body.get("type") or "approval_waiting"),
                channel=self.name,
                notice=notice.id,
                approval=body.get("approval"),
                enquiry=notice.enquiry or body.get("enquiry"),
                peer=asked_by.get("node"),
                sub=asked_by.get("sub"),
                purpose=asked_by.get("purpose"),
                refs=list(body.get("refs") or []),
                rules=list(body.get("rules") or []),
                expires_at=body.get("expires_at"),
            )
        elif notice.kind == "release":
            log.info(
                "release_received",
                channel=self.name,
                notice=notice.id,
                check=body.get("check"),
                agency=body.get("agency"),
                peer=body.get("peer"),
                approval=body.get("approval"),
                state=body.get("state"),
            )
        else:
            log.info("notification_test", channel=self.name, notice=notice.id)


# --- composition ----------------------------------------------------------------------


def build_senders(
    channels: Mapping[str, WebhookChannel | EmailChannel | LogChannel],
    *,
    signer: Signer,
    node: str,
    session: aiohttp.ClientSession,
    clock: Callable[[], float],
    base_dir: Path,
    env: Mapping[str, str],
) -> dict[str, Channel]:
    """One sender per configured channel; a ConfigError names the channel at fault."""
    senders: dict[str, Channel] = {}
    for name, config in channels.items():
        if isinstance(config, WebhookChannel):
            senders[name] = WebhookSender(
                name, config=config, signer=signer, node=node, session=session, clock=clock
            )
        elif isinstance(config, EmailChannel):
            try:
                password = read_password(config, base_dir=base_dir, env=env)
            except ConfigError as exc:
                raise ConfigError(f"notifications.channels.{name}: {exc.detail}") from exc
            senders[name] = EmailSender(name, config=config, node=node, password=password)
        else:
            senders[name] = LogSender(name)
    return senders
