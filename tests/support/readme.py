"""The README's shell blocks as commands, so tests run what the README says, not a copy of it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def sh_block(heading: str, readme: Path = README) -> str:
    """The one fenced `sh` block under `## heading` (before the next `## `)."""
    text = readme.read_text()
    section = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"README.md has no section '## {heading}'"
    blocks = re.findall(r"^```sh\n(.*?)^```", section.group(1), re.M | re.S)
    assert len(blocks) == 1, f"'## {heading}' holds {len(blocks)} sh blocks, not one"
    return str(blocks[0])


def commands(block: str) -> list[list[str]]:
    """Each command as its words: `\\` continuations joined, `# comments` dropped (a line
    that is only a comment continues the previous command's comment), quotes honoured."""
    joined: list[str] = []
    pending = ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "the block ends in a continuation"
    return [words for line in joined if (words := shlex.split(line, comments=True))]
