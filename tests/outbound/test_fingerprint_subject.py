"""A fingerprint as part of a subject: through the agencies' local API and through
`ncb-connector search --fingerprint FILE`, against real nodes on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from support.network import configure, import_rows, load
from support.processes import cli

from bench._fingerprint_images import png
from connector.demo import DEMO_FINGER, demo_print, network
from connector.outbound.agencies import add_agency
from connector.records.fingerprints.extraction import PNG_SIGNATURE
from connector.records.fingerprints.iso19794 import read_template
from connector.vocabulary import AgencyKind, Category

DESK = """\
outbound:
  - name: the NCB desk, fingerprints
    agency: ncb-desk
    categories: [fingerprints]
    to: "*"
"""


def _with_desk(node_id: str, directory: Path) -> None:
    configure(node_id, directory)
    (directory / "policies" / "20-agencies.yaml").write_text(DESK)


async def test_a_subject_with_a_fingerprint_through_the_local_api(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], _with_desk) as net:
        load(net)
        s = net["FR"].node.settings
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb-desk", AgencyKind.NCB, now=time.time()
        )
        url = f"http://127.0.0.1:{net['FR'].service.local_port}/local/v1/checks"
        body = {
            "purpose": "criminal_investigation",
            "sub": "desk-1",
            "subject": {"fingerprint": demo_print(3, version="2011")},
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                url, data=orjson.dumps(body), headers={"Authorization": f"Bearer {token}"}
            ) as resp,
        ):
            status, doc = resp.status, await resp.json()
        assert status == 200, doc
        (check,) = doc["checks"]
        assert (check["id"], check["category"]) == ("fingerprint", "fingerprints")
        (de,) = check["peers"]
        assert de["status"] == "hit"
        (hit,) = de["hits"]
        assert hit["verification_required"] is True
        assert hit["reasons"][0]["finger"] == DEMO_FINGER


async def test_search_fingerprint_file_from_the_terminal(tmp_path: Path) -> None:
    async with network(tmp_path, ["FR", "DE"], configure) as net:
        load(net)
        config = net["FR"].node.settings.base_dir / "connector.yaml"
        record = tmp_path / "latent.fmr"
        record.write_bytes(base64.b64decode(demo_print(4)))  # the ISO record itself
        searched = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(record), "--json", config=config, check=False
        )
        assert searched.returncode == 3, searched.stderr  # a hit
        (check,) = json.loads(searched.stdout)["checks"]
        assert check["criteria"] == {"template": demo_print(4)}
        (de,) = check["peers"]
        assert de["status"] == "hit"
        assert de["hits"][0]["verification_required"] is True
        # Not a minutiae record: said before anything is sent, exit 2.
        junk = tmp_path / "junk.json"
        junk.write_text('{"loci": {}}')
        refused = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(junk), config=config, check=False
        )
        assert refused.returncode == 2
        assert "not a fingerprint" in refused.stderr
        # A record that does not read: the criteria error, before anything is sent.
        short = tmp_path / "short.fmr"
        short.write_bytes(base64.b64decode(demo_print(4))[:40])
        unread = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(short), config=config, check=False
        )
        assert unread.returncode == 2
        assert "template" in unread.stderr


def _images() -> tuple[bytes, bytes, bytes]:
    """Two impressions of one synthetic finger, and one of another."""
    from bench._fingerprint_images import Pressing, impression, master

    mate, stranger = master(700), master(701)
    held = impression(mate, Pressing(), seed=1)
    latent = impression(mate, Pressing(rotation=-10.0, shift=(12.0, 8.0), elastic=4.0), seed=2)
    return held, latent, impression(stranger, Pressing(), seed=3)


def _hold(net: dict[str, Any], held: bytes, other: bytes) -> None:
    rows = [
        {"id": "DE-F-IMG-1", "finger": 2, "image": base64.b64encode(held).decode()},
        {"id": "DE-F-IMG-2", "finger": 2, "image": base64.b64encode(other).decode()},
    ]
    import_rows(net, Category.FINGERPRINTS, rows)


def _only_minutiae(criteria: dict[str, Any]) -> None:
    """What went to the peer: an ISO/IEC 19794-2 record of minutiae, no image."""
    assert set(criteria) == {"template"}
    data = base64.b64decode(criteria["template"])
    assert not data.startswith(PNG_SIGNATURE)
    assert len(read_template(data).views[0].minutiae) >= 12


async def test_a_fingerprint_image_through_the_local_api_sends_only_minutiae(
    tmp_path: Path,
) -> None:
    held, latent, other = await asyncio.to_thread(_images)
    async with network(tmp_path, ["FR", "DE"], _with_desk) as net:
        _hold(net, held, other)
        s = net["FR"].node.settings
        _, token = add_agency(
            s.state_path(s.federation.agencies_file), "ncb-desk", AgencyKind.NCB, now=time.time()
        )
        url = f"http://127.0.0.1:{net['FR'].service.local_port}/local/v1/checks"
        body = {
            "purpose": "criminal_investigation",
            "sub": "desk-1",
            "subject": {"fingerprint_image": base64.b64encode(latent).decode()},
        }
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=orjson.dumps(body), headers=headers) as resp,
        ):
            status, doc = resp.status, await resp.json()
        assert status == 200, doc
        (check,) = doc["checks"]
        _only_minutiae(check["criteria"])
        (de,) = check["peers"]
        assert de["status"] == "hit"
        first = de["hits"][0]
        assert first["ref"] == "DE:fingerprints:DE-F-IMG-1"
        assert first["reasons"][0]["bozorth3"] >= 40
        assert first["verification_required"] is True
        # An image with no finger in it: refused, naming the field, before anything is sent.
        blank = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(40)).decode()
        bad = {**body, "subject": {"fingerprint_image": blank}}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=orjson.dumps(bad), headers=headers) as resp,
        ):
            refused = await resp.json()
            assert resp.status == 422, refused
        assert "fingerprint_image" in json.dumps(refused)


async def test_search_fingerprint_png_from_the_terminal_sends_only_minutiae(
    tmp_path: Path,
) -> None:
    held, latent, other = await asyncio.to_thread(_images)
    async with network(tmp_path, ["FR", "DE"], configure) as net:
        _hold(net, held, other)
        config = net["FR"].node.settings.base_dir / "connector.yaml"
        image = tmp_path / "latent.png"
        image.write_bytes(latent)
        searched = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(image), "--json", config=config, check=False
        )
        assert searched.returncode == 3, searched.stderr  # a hit
        (check,) = json.loads(searched.stdout)["checks"]
        _only_minutiae(check["criteria"])
        (de,) = check["peers"]
        assert de["status"] == "hit"
        assert de["hits"][0]["verification_required"] is True
        # An image with no finger in it: said before anything is sent, exit 2.
        blank = tmp_path / "blank.png"
        blank.write_bytes(png(np.full((300, 300), 255, dtype=np.uint8)))
        refused = await asyncio.to_thread(
            cli, "search", "--fingerprint", str(blank), config=config, check=False
        )
        assert refused.returncode == 2, refused.stderr
        assert "0 minutiae found in the image" in refused.stderr
