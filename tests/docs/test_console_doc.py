"""docs/console.md stays true: its connector.yaml example is one a node reads, and it shows
every screenshot the browser test writes (and only those)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from connector.settings.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "console.md"


def test_the_config_example_is_read_as_written(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(.*?)```", text, flags=re.S)
    assert block is not None
    example = yaml.safe_load(block.group(1))
    config = tmp_path / "connector.yaml"
    config.write_text(
        yaml.safe_dump(
            {"node": "FR", "key_file": "k.jwk", "tls": {"cert": "c", "key": "k"}, **example}
        )
    )
    settings: Settings = load_settings(config)
    assert settings.listen.console is not None
    assert settings.listen.console.port == 8090
    assert settings.console_tls is False  # loopback
    assert settings.console.idle_timeout_s == 900


def test_every_screenshot_is_shown() -> None:
    text = DOC.read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\(console/([\w-]+\.png)\)", text))
    written = {p.name for p in (ROOT / "docs" / "console").glob("*.png")}
    assert shown == written
    assert {"login.png", "overview.png", "enquiries.png", "enquiry.png", "peers.png"} <= shown
