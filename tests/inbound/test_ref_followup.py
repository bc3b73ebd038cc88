"""Follow-ups by record reference: answered for refs the peer was given, not for guesses."""

from __future__ import annotations

from pathlib import Path

import yaml
from support.network import DATA, ask, configure, import_rows, load

from connector.demo import network
from connector.vocabulary import Category

PERSON = Category.WANTED_PERSONS


async def test_a_ref_is_followed_up_only_by_the_peer_it_was_given_to(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE", "GB"], configure) as net:
        load(net)
        # DE holds a second wanted person nobody has been told about.
        extra = {**DATA[PERSON][0], "id": "DE-2025-000124", "document_numbers": ["X99"]}
        import_rows(net, PERSON, [extra])

        # A guess at a sequential national number: refused, whether or not it exists.
        guess = await ask(
            net, "FR", [(PERSON, {"ref": "DE-2025-000124"}), (PERSON, {"ref": "DE-2025-999999"})]
        )
        assert [guess[i].status for i in "01"] == ["error", "error"]
        assert {guess[i].reason for i in "01"} == {"ref_not_disclosed"}

        # FR finds the person by document number; from then on its ref is FR's to follow.
        found = await ask(net, "FR", [(PERSON, {"document_number": "751234567"})])
        ref = found["0"].hits[0].ref
        assert ref == "DE:wanted_persons:DE-2025-000123"
        follow = await ask(net, "FR", [(PERSON, {"ref": "DE-2025-000123"})])
        assert follow["0"].status == "hit"
        assert follow["0"].hits[0].ref == ref
        # GB was never given it.
        gb = await ask(net, "GB", [(PERSON, {"ref": "DE-2025-000123"})])
        assert (gb["0"].status, gb["0"].reason) == ("error", "ref_not_disclosed")


async def test_an_ncb_whose_references_are_public_can_answer_any(tmp_path: Path) -> None:
    def public_refs(node_id: str, directory: Path) -> None:
        configure(node_id, directory)
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        config["matching"] = {"ref_checks": "any"}
        path.write_text(yaml.safe_dump(config))

    async with network(tmp_path, ["FR", "DE"], public_refs) as net:
        load(net)
        follow = await ask(net, "FR", [(PERSON, {"ref": "DE-2025-000123"})])
        assert follow["0"].status == "hit"
