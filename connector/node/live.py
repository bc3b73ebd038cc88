"""The policy and trust store in force: each reload is parsed whole, then swapped, or refused."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from connector.errors import ConnectorError
from connector.metrics import Metrics
from connector.node.maintenance import MaintenanceSwitch
from connector.node.readiness import ReadinessChecks
from connector.peers.rotations import Reviewed, apply_statement
from connector.peers.trust import TrustStore, load_trust_store, save_trust_store
from connector.policy import CheckReport, Policy, check_policy

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadReport:
    policy_changed: bool
    peers_changed: bool
    problems: dict[str, str]


def _stamp(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)


class LiveState:
    """Holds the current Policy and TrustStore. Readers take one reference per query; a
    reload replaces the reference only after the new version has loaded without error."""

    def __init__(
        self,
        *,
        policy_dir: Path,
        peers_file: Path,
        check_policy_fn: Callable[[Path], CheckReport] = check_policy,
        channels: frozenset[str] | None = None,
        load_trust_fn: Callable[[Path], TrustStore] = load_trust_store,
        maintenance: MaintenanceSwitch | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics  # told of each reload that failed
        self.policy_dir = policy_dir
        self.peers_file = peers_file
        self._check_policy = check_policy_fn
        self._channels = channels  # None: not checked (no connector.yaml at hand)
        self._load_trust = load_trust_fn
        self.switch = maintenance
        self.checks: ReadinessChecks | None = None  # set by the running service
        self.policy: Policy = Policy.deny_all()
        self.trust: TrustStore = TrustStore.of([])
        self.problems: dict[str, str] = {}
        # Settings edited in connector.yaml that the running node cannot take without a restart.
        self.restart_needed: tuple[str, ...] = ()
        self._draining = False
        self.halted = False  # stopped answering for good: only a restart brings it back
        self.loaded = False  # until then `policy` is the deny-all placeholder
        self._policy_stamp: tuple[tuple[str, int, int], ...] = ()
        self._peers_stamp: tuple[tuple[str, int, int], ...] = ()
        self._settling: tuple[object, object] | None = None

    @property
    def draining(self) -> bool:
        """Going away, or no longer answering: either way, send no traffic here."""
        return self._draining or self.halted

    @draining.setter
    def draining(self, value: bool) -> None:
        self._draining = value

    @property
    def maintenance(self) -> str | None:
        """Why the node is under maintenance, or None."""
        return None if self.switch is None else self.switch.description

    @property
    def unready(self) -> dict[str, str]:
        """What the readiness checks last found wrong; empty when all is well."""
        return {} if self.checks is None else self.checks.problems

    def paused(self) -> tuple[str, float] | None:
        return None if self.switch is None else self.switch.paused()

    def halt(self, what: str, why: str) -> None:
        """`what` failed in a way no reload mends (the enquiry log lost): not ready, and
        `why` is reported until the node is restarted."""
        self.problems[what] = why
        self.halted = True

    def current_policy(self) -> Policy:
        return self.policy

    def current_trust(self) -> TrustStore:
        return self.trust

    def _policy_files(self) -> list[Path]:
        try:
            return sorted(self.policy_dir.glob("*.yaml"))
        except OSError:
            return []

    def retarget(
        self, *, policy_dir: Path, peers_file: Path, channels: frozenset[str] | None
    ) -> None:
        """What a reload of connector.yaml changed for the next reload: where the policy and
        the peers are, and which channels a policy may notify."""
        if (policy_dir, peers_file, channels) != (self.policy_dir, self.peers_file, self._channels):
            # Not the same files or rules as last time: the next reload reads them whatever
            # their stamps say.
            self._policy_stamp = self._peers_stamp = ()
        self.policy_dir, self.peers_file, self._channels = policy_dir, peers_file, channels

    def reload(self) -> ReloadReport:
        if self.switch is not None:
            self.switch.check()
        policy_changed = self._reload_policy()
        peers_changed = self._reload_peers()
        return ReloadReport(
            policy_changed=policy_changed, peers_changed=peers_changed, problems=dict(self.problems)
        )

    def reload_if_changed(self) -> ReloadReport | None:
        """Reload when a policy file or the peers file changed since the last attempt and
        has stayed unchanged for one polling interval: an editor rewriting a file in place
        must not have half a file (which may still parse) loaded."""
        if self.switch is not None:
            self.switch.check()
        now = (_stamp([self.policy_dir, *self._policy_files()]), _stamp([self.peers_file]))
        if now == (self._policy_stamp, self._peers_stamp):
            return None
        if now != self._settling:
            self._settling = now
            return None
        return self.reload()

    def _reload_policy(self) -> bool:
        before = _stamp([self.policy_dir, *self._policy_files()])
        report = self._check_policy(self.policy_dir)
        if _stamp([self.policy_dir, *self._policy_files()]) != before:
            # Written to while we read it: try again on the next round, not half of it now.
            log.info(
                "policy_reload_deferred",
                directory=str(self.policy_dir),
                reason="files changed while being read",
            )
            return False
        self._policy_stamp = before
        if report.policy is None:
            first = report.errors[0] if report.errors else "no policy"
            detail = f"{len(report.errors)} error(s) in the policy; the first: {first}"
            self.problems["policy"] = detail
            self._failed("policy")
            log.error(
                "policy_reload_failed",
                directory=str(self.policy_dir),
                error=detail,
                diagnostics=[str(d) for d in report.errors],
                kept=self.policy.digest if self.loaded else None,
            )
            return False
        policy = report.policy
        unknown = (
            sorted(policy_channels(policy) - self._channels) if self._channels is not None else []
        )
        if unknown:
            # A notice for a channel that does not exist would never reach anyone.
            detail = (
                f"the policy names notification channel(s) {', '.join(unknown)} that "
                "connector.yaml does not define under notifications.channels"
            )
            self.problems["policy"] = detail
            self._failed("policy")
            log.error(
                "policy_reload_failed",
                directory=str(self.policy_dir),
                error=detail,
                kept=self.policy.digest if self.loaded else None,
            )
            return False
        self.problems.pop("policy", None)
        if self.loaded and policy.digest == self.policy.digest:
            return False
        old, self.policy = (self.policy.digest if self.loaded else None), policy
        self.loaded = True
        log.info(
            "policy_loaded",
            directory=str(self.policy_dir),
            digest=policy.digest,
            previous=old,
            inbound_rules=len(policy.inbound),
            outbound_rules=len(policy.outbound),
        )
        for warning in report.warnings:
            log.warning("policy_warning", diagnostic=str(warning))
        return True

    def _failed(self, file: str) -> None:
        if self.metrics is not None:
            self.metrics.reload_failed(file)

    def repin(self, reviewed: Reviewed) -> None:
        """A peer's verified rotation pinned: in peers.yaml (read fresh, so an admin's edit
        since is kept), then in force. Where the service may not write peers.yaml (systemd
        keeps /etc read-only) the pins hold in memory until a restart, and the admin is told."""
        peer_id = reviewed.peer.id
        try:
            on_file = load_trust_store(self.peers_file)
            entry = on_file.get(peer_id)
            if entry is None:  # removed meanwhile: the admin's word wins
                return
            for statement in reviewed.accepted:
                entry = apply_statement(entry, statement)
            save_trust_store(self.peers_file, on_file.with_peer(entry))
        except (OSError, ConnectorError) as exc:
            log.error(
                "peer_rotation_not_saved",
                peer=peer_id,
                file=str(self.peers_file),
                error=getattr(exc, "detail", None) or str(exc),
                hint=f"pinned until the node restarts; run `ncb-connector peers add {peer_id} "
                "--url URL --fetch --update` to keep it",
            )
            self.trust = self.trust.with_peer(reviewed.peer)
            return
        self._reload_peers()

    def _reload_peers(self) -> bool:
        self._peers_stamp = _stamp([self.peers_file])
        try:
            trust = self._load_trust(self.peers_file)
        except ConnectorError as exc:
            self.problems["peers"] = exc.detail
            self._failed("peers")
            log.error(
                "peers_reload_failed",
                file=str(self.peers_file),
                error=exc.detail,
                kept=sorted(self.trust.peers),
            )
            return False
        self.problems.pop("peers", None)
        if trust == self.trust:
            return False
        self.trust = trust
        log.info("peers_loaded", file=str(self.peers_file), peers=sorted(trust.peers))
        return True


def policy_channels(policy: Policy) -> frozenset[str]:
    """Every channel a policy may send a notice to."""
    named = set(policy.channels)
    for rule in policy.inbound:
        named |= set(rule.channels)
    for watch in policy.watches:
        named |= set(watch.channels)
    return frozenset(named)


def file_mode_ok(path: Path) -> bool:
    """A private key readable by group or others is refused."""
    return (os.stat(path).st_mode & 0o077) == 0
