"""Fingerprint checks forwarded to the NCB's own AFIS (a real stand-in on loopback, with the
same bozorth3): its candidates are the answer, and an AFIS that cannot answer makes the
check an `error`, never a `no_hit`."""

from __future__ import annotations

import base64
import random
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support.afis import StandIn, afis
from support.network import POLICY, ask
from support.processes import free_port

from connector.crypto.keyfiles import certificate_fingerprint, make_tls_certificate
from connector.demo import DEMO_FINGER, demo_print, network
from connector.errors import ConfigError
from connector.records.fingerprints.iso19794 import write_2011
from connector.records.fingerprints.synthetic import finger
from connector.settings.config import load_settings
from connector.vocabulary import Category


def _forwarding(
    url: str, timeout: float = 0.5, pin: str | None = None
) -> Callable[[str, Path], None]:
    def configure(node_id: str, directory: Path) -> None:
        (directory / "policies" / "10-demo.yaml").write_text(POLICY)
        if node_id != "DE":
            return
        path = directory / "connector.yaml"
        config = yaml.safe_load(path.read_text())
        link: dict[str, object] = {"url": url, "timeout": timeout}
        if pin is None:
            link["insecure"] = True
        else:
            link["tls_fingerprint"] = pin
        config["fingerprints"] = {"afis": link}
        path.write_text(yaml.safe_dump(config))

    return configure


CHECK = (Category.FINGERPRINTS, {"template": demo_print(1), "finger": DEMO_FINGER})


async def test_the_afis_candidates_are_the_answer(tmp_path: Path) -> None:
    stranger = finger(random.Random(99), finger_position=DEMO_FINGER)
    stand_in = StandIn(
        prints={
            "AFIS-FP-9": demo_print(0),
            "AFIS-FP-10": base64.b64encode(write_2011([stranger])).decode(),
        }
    )
    async with afis(stand_in), network(tmp_path, ["FR", "DE"], _forwarding(stand_in.url)) as net:
        results = await ask(net, "FR", [CHECK])
        result = results["0"]
        assert result.status == "hit"
        (first,) = result.hits  # the stranger is no candidate
        assert first.ref == "DE:fingerprints:AFIS-FP-9"
        assert first.verification_required is True
        assert first.reasons[0] == {
            "finger": DEMO_FINGER,
            "afis": True,
            "verification_required": True,
        }
        assert first.record == {"finger": DEMO_FINGER, "case_reference": "AFIS-CASE-1"}
        # What DE sent: the template as asked, its finger, the check's limit.
        (asked,) = stand_in.asked
        assert asked == {
            "templates": [{"template": demo_print(1), "finger": DEMO_FINGER}],
            "limit": 10,
        }


@pytest.mark.parametrize("failure", ["status", "nonsense", "slow"])
async def test_an_afis_that_fails_is_an_error_never_a_no_hit(tmp_path: Path, failure: str) -> None:
    stand_in = StandIn(prints={"AFIS-FP-9": demo_print(0)}, failure=failure)  # type: ignore[arg-type]
    async with afis(stand_in), network(tmp_path, ["FR", "DE"], _forwarding(stand_in.url)) as net:
        results = await ask(net, "FR", [CHECK, (Category.VEHICLES, {"vin": "1M8GDM9AXKP042788"})])
        assert (results["0"].status, results["0"].reason) == ("error", "afis_unavailable")
        assert results["0"].hits == []
        assert results["1"].status == "no_hit"  # the rest of the query is answered


async def test_an_afis_that_is_down_is_an_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/candidates"  # nothing listens there
    async with network(tmp_path, ["FR", "DE"], _forwarding(url)) as net:
        results = await ask(net, "FR", [CHECK])
        assert (results["0"].status, results["0"].reason) == ("error", "afis_unavailable")


@pytest.mark.parametrize("pinned", [True, False])
async def test_the_afis_certificate_is_pinned(tmp_path: Path, pinned: bool) -> None:
    cert, key = make_tls_certificate("AFIS", ["127.0.0.1"])
    (tmp_path / "afis.crt").write_bytes(cert)
    (tmp_path / "afis.key").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "afis.crt", tmp_path / "afis.key")
    other, _ = make_tls_certificate("OTHER", ["127.0.0.1"])
    pin = certificate_fingerprint(cert if pinned else other)
    stand_in = StandIn(prints={"AFIS-FP-9": demo_print(0)}, tls=context)
    async with (
        afis(stand_in),
        network(tmp_path / "net", ["FR", "DE"], _forwarding(stand_in.url, pin=pin)) as net,
    ):
        results = await ask(net, "FR", [CHECK])
        if pinned:
            assert [h.ref for h in results["0"].hits] == ["DE:fingerprints:AFIS-FP-9"]
        else:  # another certificate: never asked, never a no-hit
            assert (results["0"].status, results["0"].reason) == ("error", "afis_unavailable")
            assert stand_in.asked == []


@pytest.mark.parametrize(
    ("afis_config", "words"),
    [
        ({"url": "http://afis.example/c"}, "needs insecure: true"),
        (
            {"url": "http://afis.example/c", "insecure": True, "tls_fingerprint": "ab" * 32},
            "needs an https",
        ),
        ({"url": "https://afis.example/c", "tls_fingerprint": "xyz"}, "SHA-256 fingerprint"),
    ],
)
def test_afis_settings_are_checked(
    tmp_path: Path, afis_config: dict[str, object], words: str
) -> None:
    from connector.node.init import init_node

    init_node(tmp_path / "n", node="DE")
    path = tmp_path / "n" / "connector.yaml"
    config = yaml.safe_load(path.read_text())
    config["fingerprints"] = {"afis": afis_config}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=words):
        load_settings(path)
