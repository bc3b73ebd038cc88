"""connector.yaml's `approvals:` section: an agency's channel must be one the node defines."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.node.init import init_node
from connector.settings.config import load_settings


def test_an_agency_channel_nobody_defines_is_refused(tmp_path: Path) -> None:
    paths = init_node(tmp_path / "FR", node="FR", peer_port=0, local_port=0)
    text = paths.config.read_text()
    paths.config.write_text(
        text + "approvals:\n  poll_interval_s: 5\n  agency_channels:\n    border-police: hook\n"
    )
    with pytest.raises(ConfigError, match=r"approvals.agency_channels .*border-police: hook"):
        load_settings(paths.config)
    paths.config.write_text(
        text
        + "notifications:\n  channels:\n    hook:\n      type: log\n"
        + "approvals:\n  poll_interval_s: 5\n  agency_channels:\n    border-police: hook\n"
    )
    settings = load_settings(paths.config)
    assert settings.approvals.agency_channels == {"border-police": "hook"}
    assert settings.approvals.poll_interval_s == 5
