"""The shipped policies and docs: examples load cleanly, the default denies, the docs match."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from connector.policy import (
    DEFAULT_POLICY_FILE,
    DEFAULT_POLICY_YAML,
    check_policy,
    load_policy,
    matrix,
    peer_universe,
)
from connector.records.categories import CATEGORIES
from connector.vocabulary import AnswerLevel, Category

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
DOC = ROOT / "docs" / "policies.md"
EXAMPLES = sorted(POLICIES.glob("*.yaml"))


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLES} >= {
        DEFAULT_POLICY_FILE,
        "example-schengen.yaml",
        "example-objects-only.yaml",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_checks_without_errors_or_warnings(tmp_path: Path, example: Path) -> None:
    shutil.copy(example, tmp_path / example.name)
    report = check_policy(tmp_path)
    assert report.errors == ()
    assert report.warnings == ()
    assert report.policy is not None


def test_the_examples_directory_loads_as_one_policy() -> None:
    report = check_policy(POLICIES)
    assert report.errors == ()
    assert report.policy is not None


def test_the_default_policy_denies_everything(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_POLICY_FILE).write_text(DEFAULT_POLICY_YAML, encoding="utf-8")
    report = check_policy(tmp_path)
    assert report.errors == ()
    assert report.warnings == ()
    policy = report.policy
    assert policy is not None
    assert policy.inbound == ()
    assert policy.outbound == ()
    assert all(row.level is AnswerLevel.NONE for row in matrix(policy, peers=["DE", "*"]))


def test_the_shipped_default_file_is_the_default_policy() -> None:
    assert (POLICIES / DEFAULT_POLICY_FILE).read_text(encoding="utf-8") == DEFAULT_POLICY_YAML


def test_the_schengen_example_does_what_its_comments_say(tmp_path: Path) -> None:
    shutil.copy(POLICIES / "example-schengen.yaml", tmp_path)
    policy = load_policy(tmp_path)
    rows = {(r.peer, r.category): r for r in matrix(policy, peers=peer_universe(policy))}
    assert rows[("*", Category.TRAVEL_DOCUMENTS)].level is AnswerLevel.SUMMARY
    assert rows[("*", Category.WANTED_PERSONS)].level is AnswerLevel.NONE
    assert rows[("DE", Category.WANTED_PERSONS)].level is AnswerLevel.SUMMARY
    assert rows[("DE", Category.VEHICLES)].level is AnswerLevel.FULL
    assert rows[("DE", Category.VEHICLES)].conditional
    assert rows[("FR-2", Category.DNA_PROFILES)].level is AnswerLevel.NONE
    assert rows[("FR", Category.DNA_PROFILES)].level is AnswerLevel.HIT
    assert rows[("US", Category.FINGERPRINTS)].level is AnswerLevel.HIT


def _doc_table() -> dict[str, tuple[list[str], list[str]]]:
    rows: dict[str, tuple[list[str], list[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `(\w+)` \| (.*) \| (.*) \|$", line)
        if match and match[1] in {c.value for c in Category}:
            summary = re.findall(r"`(\w+)`", match[2])
            full_only = re.findall(r"`(\w+)`", match[3])
            rows[match[1]] = (summary, full_only)
    return rows


def test_docs_list_the_summary_fields_of_every_category() -> None:
    table = _doc_table()
    assert set(table) == {c.value for c in Category}
    for category, spec in CATEGORIES.items():
        summary, full_only = table[category.value]
        assert summary == [f for f in spec.fields if f in spec.summary], category
        assert full_only == [f for f in spec.fields if f not in spec.summary], category


@pytest.mark.parametrize(
    "key",
    ["from", "agency_kinds", "purposes", "categories", "require_case", "answer", "reason",
     "redact", "notify", "channels", "rate", "agency", "to", "record", "category", "peer",
     "search", "probing", "enabled", "window", "distinct_criteria", "then", "release",
     "approval_expires"],
)  # fmt: skip
def test_docs_mention_every_key(key: str) -> None:
    assert f"`{key}`" in DOC.read_text(encoding="utf-8")


def _doc_examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_docs_have_examples_of_the_new_keys() -> None:
    examples = "".join(_doc_examples())
    assert "    search: [" in examples
    assert "probing:\n" in examples
    assert "    release: approval\n" in examples


@pytest.mark.parametrize("example", _doc_examples(), ids=lambda text: text.split("\n")[0])
def test_each_example_in_the_docs_checks_without_errors(tmp_path: Path, example: str) -> None:
    """Every YAML example of docs/policies.md is a policy (a lone rule, under `inbound:`),
    with the groups the examples share defined beside it."""
    text = "inbound:\n" + example if example.startswith("  - ") else example
    (tmp_path / "10-example.yaml").write_text(text, encoding="utf-8")
    if "groups:" not in text:
        (tmp_path / "00-groups.yaml").write_text("groups:\n  schengen: [DE, FR]\n")
    report = check_policy(tmp_path)
    assert report.errors == (), report.errors
