"""What an admin checks before a node relies on it: its configuration, a policy, a channel."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from connector.enquiries.entry import new_enquiry_id
from connector.errors import ConfigError, PolicyError
from connector.node.live import policy_channels
from connector.node.node import Node
from connector.notify.channels import build_senders, read_password
from connector.notify.notice import Notice
from connector.outbound.agencies import load_agencies
from connector.policy import CheckReport, check_policy
from connector.settings.config import EmailChannel, Settings
from connector.sources.model import load_sources


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigCheck:
    node: str
    peers: int
    sources: int
    agencies: int
    policy_digest: str


def check_config(settings: Settings) -> ConfigCheck:
    """Load what a starting (or reloading) node loads, together: key files, TLS certificate
    and key, peers.yaml, the policy against connector.yaml's channels, the channels' password
    files, sources.yaml and the agencies file; the first problem is raised as the node would
    raise it, except that a policy's errors are raised all together, one line each, as
    `policy check` shows them (a node reports the first)."""
    node = Node.from_settings(settings)
    report = check_policy(settings.path(settings.policy_dir))
    if report.errors:
        raise PolicyError(
            f"{len(report.errors)} error(s) in the policy",
            errors=[d.located(severity=False) for d in report.errors],
        )
    node.load_live()
    node.ssl_context()
    for name, channel in settings.notifications.channels.items():
        if isinstance(channel, EmailChannel) and channel.password_file is not None:
            try:
                # systemd credentials exist only under the unit: a file can be read now.
                read_password(channel, base_dir=settings.base_dir, env={})
            except ConfigError as exc:
                raise ConfigError(f"notifications.channels.{name}: {exc.detail}") from exc
    sources = load_sources(settings.path(settings.sources_file)).sources
    agencies_file = settings.state_path(settings.federation.agencies_file)
    agencies = load_agencies(agencies_file) if agencies_file.exists() else {}
    return ConfigCheck(
        node=settings.node,
        peers=len(node.live.trust.peers),
        sources=len(sources),
        agencies=len(agencies),
        policy_digest=node.live.policy.digest,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyCheck:
    report: CheckReport
    # Channels the policy notifies that connector.yaml does not define: a node refuses such
    # a policy, since those notices would reach nobody.
    unknown_channels: tuple[str, ...]

    @property
    def errors(self) -> int:
        return len(self.report.errors) + (1 if self.unknown_channels else 0)


def check_node_policy(directory: Path, channels: Collection[str] | None) -> PolicyCheck:
    """A policy directory checked, and against the node's channels when they are given."""
    report = check_policy(directory)
    unknown = (
        sorted(policy_channels(report.policy) - set(channels))
        if report.policy is not None and channels is not None
        else []
    )
    return PolicyCheck(report=report, unknown_channels=tuple(unknown))


async def send_test_notice(
    settings: Settings, channel: str, *, env: Mapping[str, str], clock: Callable[[], float]
) -> Notice:
    """A test notice through one channel of connector.yaml, now; the sender's DeliveryError
    when it does not arrive."""
    if channel not in settings.notifications.channels:
        known = ", ".join(sorted(settings.notifications.channels)) or "none"
        raise ConfigError(f"no channel {channel!r} in connector.yaml (channels: {known})")
    node = Node.from_settings(settings)
    now = clock()
    notice = Notice(
        id=new_enquiry_id(now),
        channel=channel,
        kind="test",
        enquiry=None,
        created_at=now,
        body={"type": "test", "node": settings.node, "message": "test notice from ncb-connector"},
    )
    async with aiohttp.ClientSession() as session:
        senders = build_senders(
            {channel: settings.notifications.channels[channel]},
            signer=node.signer,
            node=settings.node,
            session=session,
            clock=clock,
            base_dir=settings.base_dir,
            env=env,
        )
        await senders[channel].send(notice)
    return notice
