"""Witnessed checkpoints between three nodes on loopback: a log cut short on one node and
another's rewritten with its chain recomputed pass the chain check, and `verify --witnesses`
catches both from what the peers kept."""

from __future__ import annotations

import asyncio
import re
import warnings
from pathlib import Path

import orjson
import pytest
from joserfc import jwt
from structlog.testing import capture_logs
from support.databases import run_sql
from support.docs import assert_shows
from support.jose import joserfc_key
from support.network import ncb_request
from support.processes import cli

from connector.demo import DemoNode, network
from connector.enquiries.entry import row_hash
from connector.node.peer_app import WITNESSES
from connector.server.peer_api import WITNESS
from connector.vocabulary import Category, Purpose


async def _ask(net: dict[str, DemoNode], src: str, dst: str, times: int) -> None:
    request = ncb_request(
        (Category.TRAVEL_DOCUMENTS, {"number": "X0000000", "country": dst[:2]}),
        purpose=Purpose.BORDER_CONTROL,
    )
    async with net[src].node.desk() as desk:
        for _ in range(times):
            await desk.ask(request, dst)


async def _deposit_all(net: dict[str, DemoNode]) -> None:
    for n in net.values():
        # Rounds seconds apart, not a minute: the witnesses take one a second from a peer.
        n.service.peer_app[WITNESS].min_interval_s = 0.0
    for n in net.values():
        failing = await n.service.peer_app[WITNESSES].deposit()
        assert failing == {}, failing


def _log_url(n: DemoNode) -> str:
    return n.node.settings.enquiries_url


async def _verify(n: DemoNode, *args: str) -> tuple[int, str, str]:
    # In a thread: the nodes answer the CLI's recalls from this test's event loop.
    proc = await asyncio.to_thread(
        cli,
        "enquiries",
        "verify",
        *args,
        config=n.node.settings.base_dir / "connector.yaml",
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _rewrite_from(url: str, seq: int) -> None:
    """An intruder's edit of row `seq` with every later hash recomputed: a whole chain."""
    rows = run_sql(url, f"SELECT * FROM enquiries WHERE seq >= {seq} ORDER BY seq")
    prev = str(run_sql(url, f"SELECT hash FROM enquiries WHERE seq = {seq - 1}")[0]["hash"])
    for i, row in enumerate(rows):
        if i == 0:
            row["decision"] = "denied"
        row["prev_hash"] = prev
        row["hash"] = prev = row_hash(row)
        run_sql(
            url,
            f"UPDATE enquiries SET decision = '{row['decision']}', prev_hash = "
            f"'{row['prev_hash']}', hash = '{row['hash']}' WHERE seq = {row['seq']}",
        )


async def test_verify_with_witnesses_catches_a_cut_log_and_a_rewritten_one(
    tmp_path: Path,
) -> None:
    async with network(tmp_path, ["FR", "DE", "IT"]) as net:
        fr, de, it = net["FR"], net["DE"], net["IT"]
        await _ask(net, "FR", "DE", 3)  # three rows in each of FR's and DE's logs
        await _deposit_all(net)
        await _ask(net, "FR", "DE", 3)  # rows 4-6, witnessed by a second round
        await _deposit_all(net)
        await _ask(net, "IT", "FR", 2)

        code, out, _ = await _verify(fr, "--witnesses")
        assert code == 0, out
        assert "witness DE: 2 checkpoint(s) up to row 6" in out
        assert "witness IT: 2 checkpoint(s) up to row 6" in out

        # FR's log loses its newest rows; DE's is rewritten from row 5, its chain recomputed.
        run_sql(_log_url(fr), "DELETE FROM enquiries WHERE seq > 4")
        _rewrite_from(_log_url(de), 5)
        for n in (fr, de):
            code, out, _ = await _verify(n)
            assert code == 0, out
            assert out.startswith("ok: "), out  # the chain alone cannot tell

        code, out, errors = await _verify(fr, "--witnesses")
        assert code == 1
        assert "the chain is whole (4 row(s)" in errors
        assert "WITNESS DE: row 6" in errors
        assert "is gone: the log ends at row 4" in errors
        assert "WITNESS IT: row 6" in errors
        assert "Rows were cut" in errors
        assert "checkpoint (keep it off this host" not in out  # nothing vouches for it now

        code, out, errors = await _verify(de, "--witnesses")
        assert code == 1
        assert_shows("operations.md", "verify-witnesses", out + errors)
        # As operations.md §10 shows it.
        assert re.search(
            r"^WITNESS FR: row 6 is not the row this node vouched for at [0-9: -]+ UTC: the "
            r"log was rewritten after row 3 and by row 6 \(1 of 2 checkpoint\(s\) fail\)$",
            errors,
            re.M,
        ), errors
        code, out, errors = await _verify(de, "--witnesses", "--json")
        assert code == 1
        doc = orjson.loads(out)
        assert doc["ok"] is False
        assert doc["rows"] == 6
        assert doc["checkpoint"] is None
        assert {w["peer"] for w in doc["witnesses"]} == {"FR", "IT"}
        for w in doc["witnesses"]:
            # Row 3 (the first round) still holds; row 6 (the second) does not: the rewrite
            # began after row 3 and by row 6.
            assert w["last_good_seq"] == 3
            assert [(m["seq"], m["problem"]) for m in w["mismatches"]] == [(6, "rewritten")]

        # IT's log was not touched: its witnesses agree.
        code, out, _ = await _verify(it, "--witnesses")
        assert code == 0, out


async def test_a_node_hears_at_once_that_its_witnesses_hold_more_than_its_log(
    tmp_path: Path,
) -> None:
    async with network(tmp_path, ["FR", "DE"]) as net:
        fr, de = net["FR"], net["DE"]
        await _ask(net, "DE", "FR", 4)
        await _deposit_all(net)
        run_sql(_log_url(fr), "DELETE FROM enquiries WHERE seq > 2")  # a restore, or a cut
        with capture_logs() as events:
            assert await fr.service.peer_app[WITNESSES].deposit() == {}
        behind = [e for e in events if e["event"] == "enquiry_log_behind_witness"]
        assert behind
        assert behind[0]["witnessed_seq"] == 4
        assert behind[0]["log_seq"] == 2

        # New rows 3-4 with other content: FR's key now vouches for a second row 4, which
        # its witness keeps beside the first, as evidence, and reports on its side.
        await _ask(net, "DE", "FR", 2)
        with capture_logs() as events:
            await fr.service.peer_app[WITNESSES].deposit()
        conflicts = [e for e in events if e["event"] == "witnessed_checkpoint_conflict"]
        assert [(e["peer"], e["seq"]) for e in conflicts] == [("FR", 4)]
        rows = run_sql(_log_url(de), "SELECT seq FROM witnessed WHERE node = 'FR'")
        assert sorted(int(str(r["seq"])) for r in rows) == [2, 4, 4]


async def test_witness_messages_verify_with_a_standard_jose_library(tmp_path: Path) -> None:
    """A peer written by another team checks our checkpoint, receipt and recall answer with
    its own JOSE library (RFC 7515/8037)."""
    from connector.peers.client import PeerClient, peer_session
    from connector.protocol import new_jti, sign_checkpoint, sign_recall

    async with network(tmp_path, ["FR", "DE"]) as net:
        fr, de = net["FR"], net["DE"]
        await _ask(net, "FR", "DE", 1)
        peer = fr.node.live.current_trust().peers["DE"]
        fr_key, de_key = joserfc_key(fr.node.signer), joserfc_key(de.node.signer)
        async with peer_session() as session:
            client = PeerClient(
                session=session, signer=fr.node.signer, node="FR", clock=fr.node.clock
            )
            jti = new_jti()
            seq, head = fr.service.enquiry_log.head()
            deposit = sign_checkpoint(
                fr.node.signer,
                node="FR",
                seq=seq,
                head=head,
                at=fr.node.clock(),
                aud="DE",
                jti=jti,
            )
            receipt = await client.post(peer, "/v1/witness", deposit.encode())
            _, recall = sign_recall(fr.node.signer, iss="FR", aud="DE", now=fr.node.clock())
            witnessed = await client.post(peer, "/v1/witness/recall", recall)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc's SecurityWarning on OKP keys
            dep = jwt.decode(deposit, fr_key, algorithms=["EdDSA"])
            rec = jwt.decode(receipt.decode(), de_key, algorithms=["EdDSA"])
            wit = jwt.decode(witnessed.decode(), de_key, algorithms=["EdDSA"])
        assert dep.header["typ"] == "ncb-checkpoint+jwt"
        assert dep.claims["aud"] == "DE"
        assert dep.claims["seq"] == seq
        assert rec.header["typ"] == "ncb-receipt+jwt"
        assert rec.claims["in_reply_to"] == jti
        assert rec.claims["latest_seq"] == seq
        assert wit.header["typ"] == "ncb-witnessed+jwt"
        assert wit.claims["checkpoints"] == [deposit]


@pytest.mark.parametrize(
    "case",
    ["iss_is_another_peer", "not_a_peer", "query_typ", "too_often", "wrong_aud"],
)
async def test_a_witness_keeps_only_what_the_peer_itself_signed(tmp_path: Path, case: str) -> None:
    from connector.crypto.jws import Signer, SigningKey
    from connector.errors import PeerRejected
    from connector.peers.client import PeerClient, peer_session
    from connector.protocol import TYP_QUERY, sign_checkpoint

    async with network(tmp_path, ["FR", "DE", "IT"]) as net:
        fr, de = net["FR"], net["DE"]
        await _ask(net, "FR", "DE", 1)
        peer = fr.node.live.current_trust().peers["DE"]
        now = fr.node.clock()
        signer, node, aud = fr.node.signer, "FR", "DE"
        if case == "iss_is_another_peer":
            node = "IT"  # FR's key vouching for IT's log
        elif case == "not_a_peer":
            signer = Signer(SigningKey.generate())
        elif case == "wrong_aud":
            aud = "IT"
        token = sign_checkpoint(signer, node=node, seq=1, head="a" * 64, at=now, aud=aud)
        if case == "query_typ":
            claims = {"iss": "FR", "aud": "DE", "iat": int(now), "exp": int(now) + 60}
            token = signer.sign_compact(
                orjson.dumps({**claims, "jti": "A" * 22, "seq": 1, "hash": "a" * 64}),
                typ=TYP_QUERY,
            ).decode()
        expected = {
            "iss_is_another_peer": (401, "unknown_key"),
            "not_a_peer": (401, "unknown_key"),
            "query_typ": (400, "wrong_type"),
            "wrong_aud": (403, "wrong_audience"),
            "too_often": (429, "too_many_checkpoints"),
        }[case]
        async with peer_session() as session:
            client = PeerClient(session=session, signer=signer, node="FR", clock=fr.node.clock)
            if case == "too_often":
                await client.post(peer, "/v1/witness", token.encode())
                token = sign_checkpoint(signer, node="FR", seq=1, head="b" * 64, at=now, aud="DE")
            with pytest.raises(PeerRejected) as refused:
                await client.post(peer, "/v1/witness", token.encode())
        assert refused.value.extra["peer_status"] == expected[0]
        assert refused.value.extra["peer_problem"]["code"] == expected[1]
        kept = run_sql(_log_url(de), "SELECT node, hash FROM witnessed")
        assert all(r["node"] == "FR" and r["hash"] == "a" * 64 for r in kept)
        assert len(kept) == (1 if case == "too_often" else 0)


async def test_a_recall_returns_the_asking_node_s_checkpoints_and_no_other(
    tmp_path: Path,
) -> None:
    from connector.enquiries.audit import Recalled
    from connector.peers.client import PeerClient, peer_session
    from connector.peers.witnesses import recall

    async with network(tmp_path, ["FR", "DE", "IT"]) as net:
        await _ask(net, "FR", "DE", 2)
        await _ask(net, "IT", "DE", 1)
        await _deposit_all(net)
        fr = net["FR"]
        peers = [fr.node.live.current_trust().peers[p] for p in ("DE", "IT")]
        async with peer_session() as session:
            client = PeerClient(
                session=session, signer=fr.node.signer, node="FR", clock=fr.node.clock
            )
            got = await recall(client, peers, own_keys=[fr.node.signer.public])
        assert [r.peer for r in got] == ["DE", "IT"]
        assert all(isinstance(r, Recalled) and r.error is None for r in got)
        assert all({c.node for c in r.checkpoints} == {"FR"} for r in got)
        assert all(r.checkpoints[-1].seq == 2 for r in got)
