"""protocol.md §6.4's worked example is what two real nodes do: DE holds the stain shown, FR
sends the check shown, and DE's answer carries the result shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from support.network import import_rows, ncb_request

from connector.demo import network
from connector.protocol import CHECK_CLAIMS
from connector.vocabulary import Category

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
inbound:
  - name: DNA for FR, summary
    from: [FR]
    categories: [dna_profiles]
    answer: summary
outbound:
  - agency: ncb
    to: "*"
"""


def example(name: str) -> Any:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- dna-example: {name} -->\n```json\n(.*?)\n```", text, flags=re.S)
    assert found is not None, name
    return orjson.loads(found[1])


def _policy(node_id: str, directory: Path) -> None:
    (directory / "policies" / "10-demo.yaml").write_text(POLICY)


async def test_the_worked_dna_example(tmp_path: Path) -> None:
    held, check, result = example("held"), example("check"), example("result")
    claims = CHECK_CLAIMS.validate_python(check)  # it is a valid §5.2 check object
    async with network(tmp_path, ["FR", "DE"], _policy) as net:
        import_rows(net, Category.DNA_PROFILES, [held])
        request = ncb_request((claims["category"], claims["criteria"]))
        async with net["FR"].node.desk() as desk:
            ex = await desk.ask(request, "DE")
    (got,) = ex.answer.results
    assert got.status == result["status"]
    assert got.level.value == result["level"]
    assert [h.model_dump() for h in got.hits] == result["hits"]
