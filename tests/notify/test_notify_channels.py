"""Channels against real receivers on loopback: a webhook that checks signatures with joserfc,
an SMTP server (aiosmtpd), and the log; plus the readable text and the SMTP password."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from joserfc import jwt
from joserfc.jwk import OKPKey
from structlog.testing import capture_logs
from support.jose import joserfc_key

from connector.crypto.jws import Signer, SigningKey
from connector.crypto.keyfiles import certificate_fingerprint, make_tls_certificate
from connector.errors import ConfigError
from connector.logs import configure_logging
from connector.notify.channels import (
    DeliveryError,
    EmailSender,
    LogSender,
    WebhookSender,
    build_senders,
    read_password,
)
from connector.notify.notice import CheckOutcome, Notice, enquiry_notice_body
from connector.notify.render import notice_text
from connector.policy import Notify
from connector.policy.model import DEFAULT_DENY
from connector.settings.config import EmailChannel, LogChannel, WebhookChannel
from connector.vocabulary import AnswerLevel, Category

NOW = 1_750_000_000.0
NOTICE_ID = "01JXNOTICE0000000000000001"
ENQUIRY_ID = "01JXENQUIRY000000000000001"


def clock() -> float:
    return NOW


# --- notices --------------------------------------------------------------------------


def enquiry_body(*, case: str | None = "BKA-2025-77") -> dict[str, Any]:
    rule = dataclasses.replace(
        DEFAULT_DENY,
        rule="wanted persons for Schengen border checks",
        level=AnswerLevel.SUMMARY,
        notify=Notify.ON_HIT,
    )
    return enquiry_notice_body(
        node="FR",
        enquiry=ENQUIRY_ID,
        at="2025-06-15T14:02:11Z",
        peer="DE",
        sub="bpol/4711",
        agency_kind="border",
        purpose="border_control",
        case=case,
        checks=[
            {
                "id": "a",
                "category": "wanted_persons",
                "criteria": {
                    "last_name": "Müller",
                    "first_name": "Jean",
                    "birth_date": "1980-02-29",
                },
            },
            {
                "id": "b",
                "category": "travel_documents",
                "criteria": {"number": "18FR12345", "country": "FR"},
            },
        ],
        outcomes=[
            CheckOutcome(
                check="a",
                category=Category.WANTED_PERSONS,
                decision=rule,
                status="hit",
                level="summary",
                hit_ids=("FR-2025-000123",),
                refs=("FR:wanted_persons:FR-2025-000123",),
            ),
            CheckOutcome(
                check="b",
                category=Category.TRAVEL_DOCUMENTS,
                decision=DEFAULT_DENY,
                status="denied",
                level="none",
                hit_ids=(),
                refs=(),
            ),
        ],
        reasons=[
            "rule: wanted persons for Schengen border checks",
            "watch: wanted_persons/FR-2025-000123",
        ],
    )


def make_notice(
    kind: str = "enquiry", *, id: str = NOTICE_ID, body: dict[str, Any] | None = None
) -> Notice:
    if body is None:
        body = {
            "enquiry": enquiry_body(),
            "digest": {
                "type": "digest",
                "node": "FR",
                "since": "2025-06-14T07:00:00Z",
                "until": "2025-06-15T07:00:00Z",
                "enquiries": 12,
                "by_peer": {"DE": 7, "NL": 5},
                "by_category": {"wanted_persons": 9, "travel_documents": 3},
                "hits": 2,
                "denials": 1,
            },
            "test": {"type": "test", "node": "FR"},
        }[kind]
    return Notice(
        id=id,
        channel="duty",
        kind=kind,  # type: ignore[arg-type]
        enquiry=ENQUIRY_ID if kind == "enquiry" else None,
        created_at=NOW,
        body=body,
    )


@pytest.fixture
def signer() -> Signer:
    return Signer(SigningKey.generate())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Tls:
    cert: Path
    key: Path
    pem: bytes
    fingerprint: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem.decode())


def make_tls(directory: Path, name: str = "receiver") -> Tls:
    cert, key = make_tls_certificate("FR", ["127.0.0.1", "localhost"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.crt").write_bytes(cert)
    (directory / f"{name}.key").write_bytes(key)
    return Tls(
        cert=directory / f"{name}.crt",
        key=directory / f"{name}.key",
        pem=cert,
        fingerprint=certificate_fingerprint(cert),
    )


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return make_tls(tmp_path / "tls")


# --- the readable text ----------------------------------------------------------------


def test_enquiry_text_reads_like_a_report() -> None:
    subject, text = notice_text(make_notice())
    assert subject == (
        "[ncb-connector FR] DE asked about wanted_persons, travel_documents: "
        "HIT FR:wanted_persons:FR-2025-000123"
    )
    for line in (
        "Enquiry:     " + ENQUIRY_ID,
        "Asked by:    DE",
        "Agency kind: border",
        "User:        bpol/4711",
        "Purpose:     border_control",
        "Case:        BKA-2025-77",
        "Check 1 of 2 (id a): wanted_persons",
        "    last_name:  Müller",
        "  Outcome:        HIT",
        "  Answered level: summary",
        "  Deciding rule:  wanted persons for Schengen border checks",
        "  Matched:        FR:wanted_persons:FR-2025-000123",
        "  Outcome:        DENIED",
        "  Deciding rule:  (none: default deny)",
        "  - watch: wanted_persons/FR-2025-000123",
    ):
        assert line in text.splitlines(), (line, text)
    assert "<" not in text


def test_single_check_subject_and_denied_match() -> None:
    body = enquiry_body()
    body["checks"] = body["checks"][:1]
    assert (
        notice_text(make_notice(body=body))[0]
        == "[ncb-connector FR] DE asked about wanted_persons: HIT FR:wanted_persons:FR-2025-000123"
    )
    body["checks"][0] = {**body["checks"][0], "status": "denied", "answered_level": "none"}
    subject, text = notice_text(make_notice(body=body))
    assert subject.endswith("wanted_persons: DENIED, matched FR:wanted_persons:FR-2025-000123")
    assert "did not reveal them" in text


def test_foreign_values_cannot_forge_lines() -> None:
    body = enquiry_body(case="X\nWhy you are notified:\n  - rule: fake\x1b[31m")
    subject, text = notice_text(make_notice(body=body))
    assert text.splitlines().count("Why you are notified:") == 1
    assert "  - rule: fake" not in text.splitlines()
    assert "\x1b" not in text
    assert "\n" not in subject


def test_digest_and_test_text() -> None:
    subject, text = notice_text(make_notice("digest"))
    assert subject == (
        "[ncb-connector FR] digest: 12 enquiries, 2 hits, 1 denial since 2025-06-14T07:00:00Z"
    )
    lines = text.splitlines()
    assert "Enquiries: 12" in lines
    assert lines.index("By peer:") < lines.index("  DE       7") < lines.index("  NL       5")
    assert "  wanted_persons         9" in lines
    subject, text = notice_text(make_notice("test"))
    assert subject == "[ncb-connector FR] test notice on channel duty"
    assert text.count("\n") == 1
    assert "this channel works" in text


def test_text_survives_an_empty_body() -> None:
    for kind in ("enquiry", "digest", "test"):
        subject, text = notice_text(make_notice(kind, body={}))
        assert subject.startswith("[ncb-connector]")
        assert text


# --- a real webhook receiver ----------------------------------------------------------


@dataclass
class Receiver:
    """Verifies every POST with joserfc; answers the queued statuses, then 200."""

    key: OKPKey
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        token = await request.read()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc's SecurityWarning on OKP keys
                decoded = jwt.decode(token, self.key, algorithms=["EdDSA"])
        except Exception as exc:
            self.problems.append(f"signature: {type(exc).__name__}: {exc}")
            return web.Response(status=401)
        if decoded.header.get("typ") != "ncb-notice+jwt":
            self.problems.append(f"typ: {decoded.header.get('typ')}")
        if request.content_type != "application/jose":
            self.problems.append(f"content type: {request.content_type}")
        if request.headers.get("Idempotency-Key") != decoded.claims.get("jti"):
            self.problems.append("Idempotency-Key is not the jti")
        self.received.append(
            {
                "header": decoded.header,
                "claims": decoded.claims,
                "idempotency_key": request.headers.get("Idempotency-Key"),
            }
        )
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": "7"} if status == 429 else {}
        return web.Response(status=status, headers=headers)


async def start_receiver(
    key: OKPKey,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[Receiver, web.AppRunner]:
    receiver = Receiver(key=key)
    app = web.Application()
    app.router.add_post("/hooks/ncb", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/hooks/ncb?t=secret"
    return receiver, runner


@pytest.fixture
async def receiver(signer: Signer) -> AsyncIterator[Receiver]:
    rx, runner = await start_receiver(joserfc_key(signer))
    yield rx
    await runner.cleanup()


@pytest.fixture
async def tls_receiver(signer: Signer, tls: Tls) -> AsyncIterator[Receiver]:
    rx, runner = await start_receiver(joserfc_key(signer), tls.server_context())
    yield rx
    await runner.cleanup()


def webhook(
    url: str,
    signer: Signer,
    session: aiohttp.ClientSession,
    **config: Any,
) -> WebhookSender:
    return WebhookSender(
        "hook",
        config=WebhookChannel(type="webhook", url=url, **config),
        signer=signer,
        node="FR",
        session=session,
        clock=clock,
    )


async def test_webhook_delivers_a_signed_notice(
    receiver: Receiver, signer: Signer, session: aiohttp.ClientSession
) -> None:
    notice = make_notice()
    with capture_logs() as logs:
        await webhook(receiver.url, signer, session, insecure=True).send(notice)
    assert receiver.problems == []
    [got] = receiver.received
    assert got["header"] == {"alg": "EdDSA", "kid": signer.kid, "typ": "ncb-notice+jwt"}
    assert got["claims"] == {
        "iss": "FR",
        "iat": int(NOW),
        "jti": NOTICE_ID,
        "kind": "enquiry",
        "enquiry": ENQUIRY_ID,
        "notice": enquiry_body(),
    }
    assert got["idempotency_key"] == NOTICE_ID
    assert [e["event"] for e in logs] == ["notify_webhook_insecure"]
    assert "secret" not in logs[0]["url"]


async def test_webhook_over_pinned_tls(
    tls_receiver: Receiver, signer: Signer, tls: Tls, session: aiohttp.ClientSession
) -> None:
    for kind in ("enquiry", "digest", "test"):
        await webhook(tls_receiver.url, signer, session, tls_fingerprint=tls.fingerprint).send(
            make_notice(kind, id=f"n-{kind}")
        )
    assert tls_receiver.problems == []
    assert [r["claims"]["kind"] for r in tls_receiver.received] == ["enquiry", "digest", "test"]
    assert [r["idempotency_key"] for r in tls_receiver.received] == [
        "n-enquiry",
        "n-digest",
        "n-test",
    ]


async def test_webhook_wrong_pin_is_retryable(
    tls_receiver: Receiver, signer: Signer, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    other = make_tls(tmp_path / "other")
    with pytest.raises(DeliveryError) as caught:
        await webhook(tls_receiver.url, signer, session, tls_fingerprint=other.fingerprint).send(
            make_notice()
        )
    assert caught.value.retryable
    assert str(caught.value) == (
        "cannot deliver to https://127.0.0.1:"
        f"{tls_receiver.url.split(':')[2].split('/')[0]}: "
        "the TLS certificate does not match the pin"
    )
    assert tls_receiver.received == []


async def test_webhook_https_without_pin_verifies_the_ca(
    tls_receiver: Receiver, signer: Signer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(DeliveryError, match="is not trusted") as caught:
        await webhook(tls_receiver.url, signer, session).send(make_notice())
    assert caught.value.retryable
    assert tls_receiver.received == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (503, True),
        (500, True),
        (429, True),
        (408, True),
        (400, False),
        (404, True),
        (403, True),
        (410, False),
        (301, False),
    ],
)
async def test_webhook_status_mapping(
    receiver: Receiver, signer: Signer, session: aiohttp.ClientSession, status: int, retryable: bool
) -> None:
    receiver.statuses.append(status)
    sender = webhook(receiver.url, signer, session, insecure=True)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(make_notice())
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    assert str(caught.value).startswith(f"webhook answered {status}")
    assert caught.value.retry_after == (7.0 if status == 429 else None)
    await sender.send(make_notice())  # the next attempt is answered 200
    assert [r["idempotency_key"] for r in receiver.received] == [NOTICE_ID, NOTICE_ID]


async def test_webhook_unreachable_and_slow(
    receiver: Receiver, signer: Signer, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    with pytest.raises(DeliveryError) as caught:
        await webhook(f"http://127.0.0.1:{port}/x", signer, session, insecure=True).send(
            make_notice()
        )
    assert caught.value.retryable
    assert str(caught.value) == (
        f"cannot deliver to http://127.0.0.1:{port}: "
        "connection refused (nothing listens at that address and port)"
    )
    receiver.delay = 1.0
    with pytest.raises(DeliveryError) as caught:
        await webhook(receiver.url, signer, session, insecure=True, timeout=0.2).send(make_notice())
    assert caught.value.retryable
    assert str(caught.value).endswith("within 0.2 s")


async def test_webhook_config_errors(signer: Signer, session: aiohttp.ClientSession) -> None:
    with pytest.raises(ConfigError, match="insecure: true"):
        webhook("http://127.0.0.1:9/x", signer, session)
    with pytest.raises(ConfigError, match="SHA-256"):
        webhook("https://127.0.0.1:9/x", signer, session, tls_fingerprint="AB:CD")


# --- a real SMTP server ---------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every message; answers DATA with the queued replies first."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.replies: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.replies:
            return self.replies.pop(0)
        assert isinstance(envelope.content, bytes)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope, msg))
        return "250 Message accepted for delivery"


class LoopbackController(Controller):
    """Binds port 0 and learns the port before aiosmtpd's self-test connects to it."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"ncb-fr",
        b"s3cret pass",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


@dataclass
class Smtp:
    inbox: Inbox
    port: int


def run_smtp(**kwargs: Any) -> Iterator[Smtp]:
    inbox = Inbox()
    controller = LoopbackController(inbox, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    try:
        yield Smtp(inbox=inbox, port=controller.port)
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    yield from run_smtp(authenticator=authenticator, auth_require_tls=False)


def mail(port: int, **config: Any) -> EmailChannel:
    base: dict[str, Any] = {
        "type": "email",
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "connector@ncb.fr.example",
        "to": ["duty@ncb.fr.example", "ops@ncb.fr.example"],
        "timeout": 5,
    }
    return EmailChannel(**(base | config))


def parts(msg: EmailMessage) -> tuple[str, Any]:
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/json"
    assert attachment.get_filename() == "notice.json"
    return body.get_content(), orjson.loads(attachment.get_content())


async def test_email_carries_text_and_json(smtp: Smtp) -> None:
    sender = EmailSender("mail", config=mail(smtp.port), node="FR", password=None)
    await sender.send(make_notice())
    [(envelope, msg)] = smtp.inbox.messages
    assert envelope.mail_from == "connector@ncb.fr.example"
    assert envelope.rcpt_tos == ["duty@ncb.fr.example", "ops@ncb.fr.example"]
    assert msg["Subject"] == notice_text(make_notice())[0]
    assert msg["X-NCB-Notice-Id"] == NOTICE_ID
    assert NOTICE_ID in msg["Message-ID"]
    assert msg.get_content_type() == "multipart/mixed"
    text, doc = parts(msg)
    assert text.replace("\r\n", "\n") == notice_text(make_notice())[1]
    assert "Müller" in text
    assert doc == enquiry_body()


async def test_email_duplicates_share_a_message_id(smtp: Smtp) -> None:
    sender = EmailSender("mail", config=mail(smtp.port), node="FR", password=None)
    await sender.send(make_notice("digest"))
    await sender.send(make_notice("digest"))
    await sender.send(make_notice("test", id="other"))
    ids = [m["Message-ID"] for _, m in smtp.inbox.messages]
    assert ids[0] == ids[1] != ids[2]
    assert parts(smtp.inbox.messages[0][1])[1]["type"] == "digest"


async def test_email_login(smtp: Smtp) -> None:
    good = EmailSender(
        "mail", config=mail(smtp.port, username="ncb-fr"), node="FR", password="s3cret pass"
    )
    with capture_logs() as logs:
        await good.send(make_notice())
    assert len(smtp.inbox.messages) == 1
    assert [e["event"] for e in logs] == ["notify_email_login_without_tls"]
    bad = EmailSender(
        "mail", config=mail(smtp.port, username="ncb-fr"), node="FR", password="wrong"
    )
    with pytest.raises(DeliveryError) as caught:
        await bad.send(make_notice())
    assert not caught.value.retryable
    assert caught.value.status == 535
    assert str(caught.value).startswith("SMTP server refused the login: 535")
    assert len(smtp.inbox.messages) == 1


async def test_email_smtp_codes(smtp: Smtp) -> None:
    sender = EmailSender("mail", config=mail(smtp.port), node="FR", password=None)
    smtp.inbox.replies += ["451 4.3.0 try again later", "554 5.7.1 rejected by policy"]
    with pytest.raises(DeliveryError) as caught:
        await sender.send(make_notice())
    assert caught.value.retryable
    assert caught.value.status == 451
    with pytest.raises(DeliveryError) as caught:
        await sender.send(make_notice())
    assert not caught.value.retryable
    assert caught.value.status == 554
    assert str(caught.value) == "SMTP server refused the message: 554 5.7.1 rejected by policy"
    await sender.send(make_notice())
    assert len(smtp.inbox.messages) == 1


async def test_email_server_down_is_retryable() -> None:
    port = free_port()
    sender = EmailSender("mail", config=mail(port), node="FR", password=None)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(make_notice())
    assert caught.value.retryable
    assert str(caught.value) == (
        f"cannot deliver to SMTP server 127.0.0.1:{port}: Connection refused"
    )


def test_email_username_needs_a_password() -> None:
    with pytest.raises(ConfigError, match="username is set"):
        EmailSender("mail", config=mail(25, username="x"), node="FR", password=None)


async def test_email_starttls_with_login(tls: Tls) -> None:
    for server in run_smtp(
        tls_context=tls.server_context(), require_starttls=True, authenticator=authenticator
    ):
        config = mail(server.port, security="starttls", username="ncb-fr")
        await EmailSender(
            "mail",
            config=config,
            node="FR",
            password="s3cret pass",
            tls_context=tls.client_context(),
        ).send(make_notice())
        assert len(server.inbox.messages) == 1
        # the system CAs do not know this self-signed certificate: refused, retry later
        with pytest.raises(DeliveryError) as caught:
            await EmailSender("mail", config=config, node="FR", password="s3cret pass").send(
                make_notice()
            )
        assert caught.value.retryable
        assert len(server.inbox.messages) == 1


async def test_email_implicit_tls(tls: Tls) -> None:
    for server in run_smtp(ssl_context=tls.server_context()):
        await EmailSender(
            "mail",
            config=mail(server.port, security="tls"),
            node="FR",
            password=None,
            tls_context=tls.client_context(),
        ).send(make_notice())
        assert len(server.inbox.messages) == 1


# --- the SMTP password ----------------------------------------------------------------


def test_read_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "smtp.pw").write_text("s3cret pass\n\n")
    config = mail(25, username="u", password_file=Path("smtp.pw"))
    assert read_password(config, base_dir=tmp_path, env={}) == "s3cret pass\n"
    (tmp_path / "smtp.pw").write_text("s3cret pass")
    assert read_password(config, base_dir=tmp_path, env={}) == "s3cret pass"
    with pytest.raises(ConfigError, match=r"password_file .*nope\.pw does not exist"):
        read_password(mail(25, password_file=Path("nope.pw")), base_dir=tmp_path, env={})
    assert read_password(mail(25), base_dir=tmp_path, env={}) is None


def test_read_password_from_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "smtp-password").write_text("from systemd\n")
    config = mail(25, username="u", password_credential="smtp-password")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert read_password(config, base_dir=tmp_path, env=env) == "from systemd"
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY is not set"):
        read_password(config, base_dir=tmp_path, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        read_password(mail(25, password_credential="other"), base_dir=tmp_path, env=env)


def test_read_password_unreadable(tmp_path: Path) -> None:
    (tmp_path / "dir.pw").mkdir()
    with pytest.raises(ConfigError, match="cannot read password_file"):
        read_password(mail(25, password_file=Path("dir.pw")), base_dir=tmp_path, env={})
    (tmp_path / "empty.pw").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_password(mail(25, password_file=Path("empty.pw")), base_dir=tmp_path, env={})


# --- the log channel and composition --------------------------------------------------


async def test_log_sender() -> None:
    configure_logging(fmt="json", level="info")
    sender = LogSender("log")
    with capture_logs() as logs:
        for kind in ("enquiry", "digest", "test"):
            await sender.send(make_notice(kind))
        await sender.send(make_notice(body={}))
    assert [e["event"] for e in logs] == [
        "foreign_enquiry",
        "notification_digest",
        "notification_test",
        "foreign_enquiry",
    ]
    first = logs[0]
    assert first["channel"] == "log"
    assert first["notice"] == NOTICE_ID
    assert first["enquiry"] == ENQUIRY_ID
    assert first["peer"] == "DE"
    assert first["checks"][0] == {
        "id": "a",
        "category": "wanted_persons",
        "status": "hit",
        "level": "summary",
        "rule": "wanted persons for Schengen border checks",
        "matched": ["FR:wanted_persons:FR-2025-000123"],
    }
    assert first["why"][1] == "watch: wanted_persons/FR-2025-000123"
    assert logs[1]["by_peer"] == {"DE": 7, "NL": 5}
    assert logs[1]["hits"] == 2


async def test_build_senders(
    tmp_path: Path, signer: Signer, session: aiohttp.ClientSession
) -> None:
    (tmp_path / "pw").write_text("pw\n")
    channels: dict[str, WebhookChannel | EmailChannel | LogChannel] = {
        "hook": WebhookChannel(type="webhook", url="https://soc.example/hook"),
        "duty": mail(25, username="u", password_file=Path("pw")),
        "log": LogChannel(type="log"),
    }
    senders = build_senders(
        channels, signer=signer, node="FR", session=session, clock=clock, base_dir=tmp_path, env={}
    )
    assert {n: type(s).__name__ for n, s in senders.items()} == {
        "hook": "WebhookSender",
        "duty": "EmailSender",
        "log": "LogSender",
    }
    assert all(n == s.name for n, s in senders.items())
    duty = senders["duty"]
    assert isinstance(duty, EmailSender)
    assert duty.password == "pw"
    channels["duty"] = mail(25, username="u", password_credential="smtp")
    with pytest.raises(ConfigError, match=r"^notifications\.channels\.duty: password_credential"):
        build_senders(
            channels,
            signer=signer,
            node="FR",
            session=session,
            clock=clock,
            base_dir=tmp_path,
            env={},
        )
