"""Digests and the notifications commands: schedules, summaries, list, retry, test."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.processes import audit_entries, cli, init

from connector.enquiries.entry import Entry, new_enquiry_id
from connector.enquiries.log import EnquiryLog
from connector.errors import ConfigError
from connector.notify.digest import digest_trigger, make_digest
from connector.notify.dispatcher import RetryPolicy
from connector.notify.outbox import Outbox


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        (
            "daily 07:00",
            datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
            datetime(2026, 11, 29, 7, 0, tzinfo=UTC),
        ),
        (
            "hourly",
            datetime(2026, 11, 28, 8, 30, tzinfo=UTC),
            datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        ),
        (
            "weekly mon 06:30",
            datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 6, 30, tzinfo=UTC),
        ),
        (
            "0 7 * * 1-5",
            datetime(2026, 11, 28, 8, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
        ),
    ],
)
def test_digest_schedules(text: str, after: datetime, expected: datetime) -> None:
    assert digest_trigger(text).get_next_fire_time(None, after) == expected


@pytest.mark.parametrize("text", ["daily 25:00", "sometimes", "weekly xyz 07:00", "* * *"])
def test_bad_digest_schedules_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="digest"):
        digest_trigger(text)


def _entry(n: int, *, peer: str, decision: str, hits: tuple[str, ...], category: str) -> Entry:
    return Entry(
        id=new_enquiry_id(1000.0 + n),
        at=1000.0 + n,
        direction="in",
        peer=peer,
        iss=peer,
        jti=f"jti-{n:020d}",
        sub="s",
        agency_kind="border",
        purpose="border_control",
        case_ref=None,
        decision=decision,  # type: ignore[arg-type]
        rules=("r",),
        policy_digest="d",
        checks=({"id": "1", "category": category, "criteria": {}},),
        results=(),
        hit_refs=hits,
        answer_digest="a",
        error=None,
        query_token="t",
    )


async def test_digest_counts_since_the_last_one(tmp_path: Path) -> None:
    log = EnquiryLog.open(f"sqlite:///{tmp_path / 'e.db'}")
    now = [1100.0]
    try:
        await log.append(
            _entry(1, peer="DE", decision="answered", hits=("FR:x:1",), category="travel_documents")
        )
        await log.append(
            _entry(2, peer="DE", decision="denied", hits=(), category="wanted_persons")
        )
        await log.append(
            _entry(3, peer="IT", decision="answered", hits=(), category="travel_documents")
        )
        first = make_digest(log, channel="duty", node="FR", clock=lambda: now[0], first_since=0.0)
        assert first.body["enquiries"] == 3
        assert first.body["by_peer"] == {"DE": 2, "IT": 1}
        assert first.body["by_category"] == {"travel_documents": 2, "wanted_persons": 1}
        assert (first.body["hits"], first.body["denials"]) == (1, 1)
        await log.append(_entry(150, peer="ES", decision="answered", hits=(), category="vehicles"))
        now[0] = 1200.0
        second = make_digest(log, channel="duty", node="FR", clock=lambda: now[0], first_since=0.0)
        assert second.body["enquiries"] == 1
        assert second.body["by_peer"] == {"ES": 1}
    finally:
        log.close()
    box = Outbox.open(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        rows = box.list()
    finally:
        box.close()
    assert [r.notice.kind for r in rows] == ["digest", "digest"]
    assert all(r.state == "pending" for r in rows)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(1, 2.5, 5.0), (2, 5.0, 10.0), (3, 10.0, 20.0), (12, 450.0, 900.0)],
)
def test_backoff_doubles_with_jitter_and_a_cap(attempts: int, low: float, high: float) -> None:
    import random

    policy = RetryPolicy(initial_s=5.0, max_s=900.0, max_age_s=10**9)
    rng = random.Random(7)
    for _ in range(50):
        at = policy.next_attempt(attempts=attempts, created_at=0.0, now=100.0, rng=rng)
        assert at is not None
        assert low <= at - 100.0 <= high


def test_too_old_is_dead() -> None:
    import random

    policy = RetryPolicy(initial_s=5.0, max_s=900.0, max_age_s=60.0)
    assert policy.next_attempt(attempts=1, created_at=0.0, now=59.0, rng=random.Random(1)) is None


def test_notifications_commands(tmp_path: Path) -> None:
    config, _, _ = init(tmp_path, "FR")
    config.write_text(
        config.read_text() + "notifications:\n  channels:\n"
        "    journal:\n      type: log\n      digest: daily 07:00\n"
        "    hook:\n      type: webhook\n      url: http://127.0.0.1:9/x\n"
        "      insecure: true\n      timeout: 1\n"
    )
    tested = cli("notifications", "test", "journal", config=config)
    assert "delivered test notice" in tested.stdout
    # A log channel logs where the sender runs: the test's line is on this command's log.
    assert '"event":"notification_test"' in tested.stderr, tested.stderr
    failed = cli("notifications", "test", "hook", config=config, check=False)
    assert failed.returncode == 1
    assert "hook: cannot deliver to http://127.0.0.1:9: connection refused" in failed.stderr
    unknown = cli("notifications", "test", "pager", config=config, check=False)
    assert "no channel 'pager'" in unknown.stderr
    # A dead notice, made by hand as the dispatcher would, is listed and retried.
    log = EnquiryLog.open(f"sqlite:///{config.parent / 'enquiries.db'}")
    try:
        notice = make_digest(log, channel="hook", node="FR", clock=lambda: 2000.0, first_since=0.0)
    finally:
        log.close()
    box = Outbox.open(f"sqlite:///{config.parent / 'enquiries.db'}")
    try:
        box.failed(notice.id, now=2001.0, attempts=7, error="webhook answered 410", retry_at=None)
    finally:
        box.close()
    dead = json.loads(cli("notifications", "list", "--dead", "--json", config=config).stdout)
    assert [(n["id"], n["attempts"], n["last_error"]) for n in dead] == [
        (notice.id, 7, "webhook answered 410")
    ]
    assert "1 dead" in cli("notifications", "list", config=config).stdout
    assert "1 notice(s) due again" in cli("notifications", "retry", "--dead", config=config).stdout
    retried = audit_entries(config)[-1]  # the admin audit trail says who made it due again
    assert (retried["action"], retried["target"], retried["details"]) == (
        "notices.retried",
        "dead",
        {"notices": 1},
    )
    pending = json.loads(cli("notifications", "list", "--pending", "--json", config=config).stdout)
    assert [n["id"] for n in pending] == [notice.id]
