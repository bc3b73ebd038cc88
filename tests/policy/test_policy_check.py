"""Checking policy files: every error and warning, at its exact file, line, column and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import PolicyError
from connector.policy import CheckReport, Diagnostic, check_policy, load_policy

# (file, line, column, rule, a fragment of the message)
Expected = tuple[str, int, int, str | None, str]


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        data = text.encode("utf-8") if isinstance(text, str) else text
        (directory / name).write_bytes(data)
    return directory


def found(report: CheckReport, directory: Path, severity: str) -> list[Expected]:
    items = report.errors if severity == "error" else report.warnings
    prefix = str(directory) + "/"
    return [(d.file.removeprefix(prefix), d.line, d.column, d.rule, d.message) for d in items]


def assert_matches(actual: list[Expected], expected: list[Expected]) -> None:
    assert len(actual) == len(expected), "\n".join(map(str, actual))
    for got, want in zip(actual, expected, strict=True):
        assert got[:4] == want[:4], f"{got} != {want}"
        assert want[4] in got[4], f"{want[4]!r} not in {got[4]!r}"


ERROR_CASES: list[tuple[str, dict[str, str | bytes], list[Expected]]] = [
    (
        "yaml syntax: unclosed flow list",
        {"p.yaml": "inbound:\n  - name: x\n    answer: [full\n"},
        [("p.yaml", 4, 1, None, "flow sequence (from line 3, column 13): expected ',' or ']'")],
    ),
    (
        "yaml syntax: tab indentation",
        {"p.yaml": "inbound:\n\t- name: x\n"},
        [("p.yaml", 2, 1, None, "YAML syntax: found character '\\t'")],
    ),
    (
        "yaml syntax: two documents",
        {"p.yaml": "inbound: []\n---\noutbound: []\n"},
        [("p.yaml", 2, 1, None, "YAML syntax: expected a single document in the stream")],
    ),
    (
        "a bare * is a YAML alias",
        {"p.yaml": "inbound:\n  - name: x\n    from: *\n    answer: hit\n"},
        [("p.yaml", 3, 12, None, 'a bare * starts a YAML alias: write "*" in quotes')],
    ),
    (
        "not UTF-8",
        {"p.yaml": b"inbound: []\n# caf\xe9\n"},
        [("p.yaml", 2, 6, None, "not UTF-8 text")],
    ),
    (
        "top level is a list",
        {"p.yaml": "- name: x\n  answer: full\n"},
        [("p.yaml", 1, 1, None, "the top level must be a mapping")],
    ),
    (
        "top level is a scalar",
        {"p.yaml": "just words\n"},
        [("p.yaml", 1, 1, None, "the top level must be a mapping")],
    ),
    (
        "unknown top-level key",
        {"p.yaml": "inbound: []\nwatches: []\n"},
        [("p.yaml", 2, 1, None, "unknown key 'watches' (did you mean 'watch'?)")],
    ),
    (
        "unknown key in a rule",
        {"p.yaml": "inbound:\n  - name: r\n    answer: hit\n    categorie: [vehicles]\n"},
        [("p.yaml", 4, 5, "r", "unknown key 'categorie' (did you mean 'categories'?)")],
    ),
    (
        "missing name and answer",
        {"p.yaml": "inbound:\n  - from: [DE]\n"},
        [
            ("p.yaml", 2, 5, "inbound[0]", "missing required key 'name'"),
            ("p.yaml", 2, 5, "inbound[0]", "missing required key 'answer'"),
        ],
    ),
    (
        "answer and notify without a value",
        {"p.yaml": "inbound:\n  - name: r\n    answer:\n    notify:\n"},
        [
            ("p.yaml", 3, 12, "r", "answer: has no value; expected 'none', 'hit'"),
            ("p.yaml", 4, 12, "r", "notify: has no value; expected 'never', 'on_hit'"),
        ],
    ),
    (
        "a rule that is not a mapping",
        {"p.yaml": "inbound:\n  - hit for everyone\n"},
        [("p.yaml", 2, 5, "inbound[0]", "expected a mapping")],
    ),
    (
        "unknown category, purpose, agency kind, answer level, notify",
        {
            "p.yaml": "inbound:\n"
            "  - name: r\n"
            "    categories: [wanted_person]\n"
            "    purposes: [border-control]\n"
            "    agency_kinds: [police, borders]\n"
            "    answer: ful\n"
            "    notify: sometimes\n"
        },
        [
            (
                "p.yaml",
                3,
                18,
                "r",
                "unknown category 'wanted_person' (did you mean 'wanted_persons'?)",
            ),
            (
                "p.yaml",
                4,
                16,
                "r",
                "unknown purpose 'border-control' (did you mean 'border_control'?)",
            ),
            ("p.yaml", 5, 28, "r", "unknown agency kind 'borders' (did you mean 'border'?)"),
            ("p.yaml", 6, 13, "r", "unknown answer level 'ful' (did you mean 'full'?)"),
            ("p.yaml", 7, 13, "r", "unknown notify value 'sometimes'"),
        ],
    ),
    (
        "unknown redact field, with and without categories",
        {
            "p.yaml": "inbound:\n"
            "  - name: a\n"
            "    categories: [vehicles, artworks]\n"
            "    answer: full\n"
            "    redact: [owner_name, adress]\n"
            "  - name: b\n"
            "    answer: full\n"
            "    redact: [colour, phone, colour_code]\n"
            "  - name: c\n"
            "    categories: [vehicles]\n"
            "    answer: full\n"
            "    redact: address\n"
        },
        [
            ("p.yaml", 5, 26, "a", "'adress' is not a field of artworks, vehicles"),
            (
                "p.yaml",
                8,
                29,
                "b",
                "'colour_code' is not a field of any category (did you mean 'colour'?)",
            ),
            ("p.yaml", 12, 13, "c", "'address' is not a field of vehicles"),
        ],
    ),
    (
        "unknown or unsearchable search field, with and without categories",
        {
            "p.yaml": "inbound:\n"
            "  - name: a\n"
            "    categories: [wanted_persons]\n"
            "    answer: hit\n"
            "    search: [last_name, brith_date]\n"
            "  - name: b\n"
            "    categories: [travel_documents]\n"
            "    answer: full\n"
            "    search: [number, remarks]\n"
            "  - name: c\n"
            "    answer: summary\n"
            "    search: [vim]\n"
            "  - name: d\n"
            "    answer: summary\n"
            "    search: []\n"
            "  - name: e\n"
            "    answer: summary\n"
            "    search:\n"
        },
        [
            (
                "p.yaml",
                5,
                25,
                "a",
                "search: 'brith_date' is not a searchable field of wanted_persons "
                "(did you mean 'birth_date'?)",
            ),
            ("p.yaml", 9, 22, "b", "'remarks' is not a searchable field of travel_documents"),
            (
                "p.yaml",
                12,
                14,
                "c",
                "'vim' is not a searchable field of any category (did you mean 'vin'?)",
            ),
            ("p.yaml", 15, 13, "d", "an empty list searches no field"),
            ("p.yaml", 18, 12, "e", "search: has no value"),
        ],
    ),
    (
        "probing: unknown key, action, window, threshold; set in two files",
        {
            "a.yaml": "probing:\n  window: 10min\n  then: dney\n  distinct_criteria: 1\n"
            "  notfy: [duty]\n",
            "b.yaml": "probing:\n  window: 1h\n",
        },
        [
            ("a.yaml", 2, 11, None, "window: malformed window '10min'"),
            ("a.yaml", 3, 9, None, "unknown action 'dney' (did you mean 'deny'?)"),
            ("a.yaml", 4, 22, None, "distinct_criteria: Input should be greater than or equal"),
            ("a.yaml", 5, 3, None, "unknown key 'notfy' (did you mean 'notify'?)"),
            ("b.yaml", 1, 1, None, "probing is already set at"),
        ],
    ),
    (
        "unknown group, in from and in to",
        {
            "p.yaml": "groups:\n  schengen: [DE, FR]\n"
            "inbound:\n  - name: r\n    from: [DE, group:shengen]\n    answer: hit\n"
            "outbound:\n  - agency: customs\n    to: group:nordic\n"
        },
        [
            ("p.yaml", 5, 16, "r", "from: unknown group 'shengen' (did you mean 'schengen'?)"),
            ("p.yaml", 9, 9, "outbound[0] customs", "to: unknown group 'nordic'"),
        ],
    ),
    (
        "country codes that are not ISO 3166-1 alpha-2",
        {
            "p.yaml": "groups:\n  g: [DE, XX, UK]\n"
            "inbound:\n  - name: r\n    from: [fr, FRA, EL-2, FR-toolong12]\n    answer: hit\n"
        },
        [
            ("p.yaml", 2, 11, None, "group 'g': 'XX' is not an ISO 3166-1 alpha-2 country code"),
            (
                "p.yaml",
                2,
                15,
                None,
                "'UK' is not an ISO 3166-1 alpha-2 country code (did you mean 'GB'?)",
            ),
            ("p.yaml", 5, 12, "r", "node ids are upper case: write 'FR', not 'fr'"),
            ("p.yaml", 5, 16, "r", "'FRA' looks like an alpha-3 code; node ids use alpha-2: 'FR'"),
            (
                "p.yaml",
                5,
                21,
                "r",
                "'EL' is not an ISO 3166-1 alpha-2 country code (did you mean 'GR'?)",
            ),
            ("p.yaml", 5, 27, "r", "'FR-toolong12' is not a node id"),
        ],
    ),
    (
        "a group with an error is reported where it is defined, not where it is used",
        {
            "p.yaml": "groups:\n  g: [DE, XX]\n"
            "inbound:\n  - name: r\n    from: [group:g]\n    answer: hit\n"
        },
        [("p.yaml", 2, 11, None, "group 'g': 'XX' is not an ISO 3166-1 alpha-2 country code")],
    ),
    (
        "malformed rates",
        {
            "p.yaml": "inbound:\n"
            "  - name: a\n    answer: hit\n    rate: 600/min\n"
            "  - name: b\n    answer: hit\n    rate: 0/second\n"
            "  - name: c\n    answer: hit\n    rate: 600\n"
            "  - name: d\n    answer: hit\n    rate:\n"
        },
        [
            ("p.yaml", 4, 11, "a", "malformed rate '600/min'"),
            ("p.yaml", 7, 11, "b", "malformed rate '0/second'"),
            ("p.yaml", 10, 11, "c", "malformed rate 600"),
            ("p.yaml", 13, 10, "d", "rate: has no value"),
        ],
    ),
    (
        "duplicate rule names across files",
        {
            "10-a.yaml": "inbound:\n  - name: same\n    answer: hit\n",
            "20-b.yaml": "outbound:\n  - agency: x\n    name: same\n",
        },
        [("20-b.yaml", 3, 11, "same", "duplicate rule name 'same' (first at ")],
    ),
    (
        "duplicate key in a rule",
        {"p.yaml": "inbound:\n  - name: r\n    answer: none\n    answer: full\n"},
        [("p.yaml", 4, 5, "r", "duplicate key 'answer' (first at line 3)")],
    ),
    (
        "duplicate section in a file",
        {"p.yaml": "inbound:\n  - {name: deny, answer: none}\ninbound: []\n"},
        [("p.yaml", 3, 1, None, "duplicate key 'inbound' (first at line 1)")],
    ),
    (
        "duplicate group, across files",
        {"a.yaml": "groups:\n  g: [DE]\n", "b.yaml": "groups:\n  g: [FR]\n"},
        [("b.yaml", 2, 3, None, "group 'g' is already defined at ")],
    ),
    (
        "'*' in a list",
        {"p.yaml": "inbound:\n  - name: r\n    from: [DE, '*']\n    answer: hit\n"},
        [("p.yaml", 3, 11, "r", "'*' means every peer and must stand alone")],
    ),
    (
        "a condition without value, and an empty one",
        {
            "p.yaml": "inbound:\n  - name: r\n    from:\n    answer: hit\n"
            "  - name: s\n    categories: []\n    answer: hit\n"
        },
        [
            ("p.yaml", 3, 10, "r", "from: has no value"),
            ("p.yaml", 6, 17, "s", "an empty list matches no category"),
        ],
    ),
    (
        "yes/no are not booleans, and NO is Norway",
        {
            "p.yaml": "inbound:\n  - name: r\n    from: [NO, no]\n    require_case: yes\n"
            "    answer: hit\n"
        },
        [
            ("p.yaml", 3, 16, "r", "node ids are upper case: write 'NO', not 'no'"),
            ("p.yaml", 4, 19, "r", "require_case: expected true or false, got text ('yes')"),
        ],
    ),
    (
        "defaults.channels set twice",
        {
            "a.yaml": "defaults:\n  channels: [log]\n",
            "b.yaml": "defaults:\n  channels: [webhook]\n",
        },
        [("b.yaml", 2, 3, None, "defaults.channels is already set at ")],
    ),
    (
        "watch entries",
        {
            "p.yaml": "watch:\n"
            "  - notify: [log]\n"
            "  - record: vehicles\n"
            "  - record: cars/V-1\n"
            "    notify: [log]\n"
            "  - record: vehicles/V-1\n    category: vehicles\n"
        },
        [
            ("p.yaml", 2, 5, "watch[0]", "a watch needs record, category or peer"),
            ("p.yaml", 3, 13, "watch[1]", "malformed record 'vehicles'"),
            ("p.yaml", 4, 13, "watch[2]", "unknown category 'cars'"),
            ("p.yaml", 6, 5, "watch[3]", "give record or category, not both"),
        ],
    ),
    (
        "YAML merge keys",
        {"p.yaml": "inbound:\n  - <<: {answer: hit}\n    name: r\n"},
        [
            ("p.yaml", 2, 5, "r", "YAML merge keys (<<) are not supported"),
            ("p.yaml", 2, 5, "r", "missing required key 'answer'"),
        ],
    ),
    (
        "errors in several files are all reported",
        {
            "10-a.yaml": "inbound:\n  - name: a\n    answer: maybe\n",
            "20-b.yaml": "inbound: [\n",
            "30-c.yaml": "outbound:\n  - agency: customs\n    to: [ZZ]\n",
        },
        [
            ("10-a.yaml", 3, 13, "a", "unknown answer level 'maybe'"),
            ("20-b.yaml", 2, 1, None, "YAML syntax"),
            ("30-c.yaml", 3, 10, "outbound[0] customs", "'ZZ' is not an ISO 3166-1 alpha-2"),
        ],
    ),
]


ERROR_CASES += [
    (
        "release: approval holds nothing at answer: hit",
        {"p.yaml": "inbound:\n  - name: r\n    answer: hit\n    release: approval\n"},
        [("p.yaml", 4, 14, "r", "release: approval with answer: hit holds nothing")],
    ),
    (
        "approval_expires without release: approval",
        {"p.yaml": "inbound:\n  - name: r\n    answer: summary\n    approval_expires: 2h\n"},
        [("p.yaml", 4, 23, "r", "approval_expires: without release: approval")],
    ),
    (
        "approval_expires beyond 30 days",
        {
            "p.yaml": "inbound:\n  - name: r\n    answer: full\n    release: approval\n"
            "    approval_expires: 31d\n"
        },
        [("p.yaml", 5, 23, "r", "malformed duration '31d'")],
    ),
    (
        "an unknown release",
        {"p.yaml": "inbound:\n  - name: r\n    answer: full\n    release: later\n"},
        [("p.yaml", 4, 14, "r", "release")],
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"),
    [pytest.param(files, expected, id=name) for name, files, expected in ERROR_CASES],
)
def test_errors(tmp_path: Path, files: dict[str, str | bytes], expected: list[Expected]) -> None:
    write(tmp_path, files)
    report = check_policy(tmp_path)
    assert report.policy is None
    assert not report.ok
    assert_matches(found(report, tmp_path, "error"), expected)
    assert all(d.severity == "error" for d in report.errors)
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path)
    assert raised.value.extra["diagnostics"] == [d.as_dict() for d in report.errors]
    assert str(report.errors[0]) in raised.value.detail


def test_duplicate_name_points_at_the_first(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "10-a.yaml": "inbound:\n  - name: same\n    answer: hit\n",
            "20-b.yaml": "inbound:\n  - name: same\n    answer: none\n",
        },
    )
    (error,) = check_policy(tmp_path).errors
    assert error.file == str(tmp_path / "20-b.yaml")
    assert f"first at {tmp_path / '10-a.yaml'}:2" in error.message


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no *.yaml file here"),
        ({"README": "not policy\n"}, "no *.yaml file here"),
    ],
)
def test_directory_without_policy_files(
    tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    write(tmp_path, files)
    report = check_policy(tmp_path)
    assert report.policy is None
    (error,) = report.errors
    assert (error.file, error.line, error.column, error.rule) == (str(tmp_path), 0, 0, None)
    assert message in error.message
    assert str(error) == f"{tmp_path}: error: {error.message}"


def test_missing_directory(tmp_path: Path) -> None:
    report = check_policy(tmp_path / "nope")
    assert report.policy is None
    assert "does not exist" in report.errors[0].message
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "nope")


def test_load_policy_counts_errors(tmp_path: Path) -> None:
    write(
        tmp_path, {"p.yaml": "inbound:\n  - name: a\n    answer: x\n  - name: b\n    answer: y\n"}
    )
    with pytest.raises(PolicyError) as raised:
        load_policy(tmp_path)
    assert raised.value.detail.endswith("(and 1 more error)")
    assert len(raised.value.extra["diagnostics"]) == 2
    assert raised.value.problem()["code"] == "policy_invalid"


def test_diagnostic_format() -> None:
    d = Diagnostic(file="p.yaml", line=3, column=7, rule="my rule", message="bad", severity="error")
    assert str(d) == "p.yaml:3:7: error: [my rule] bad"
    assert d.as_dict() == {
        "file": "p.yaml",
        "line": 3,
        "column": 7,
        "rule": "my rule",
        "message": "bad",
        "severity": "error",
    }
    w = Diagnostic(file="p.yaml", line=1, column=1, rule=None, message="hm", severity="warning")
    assert str(w) == "p.yaml:1:1: warning: hm"


# --- warnings ------------------------------------------------------------------------

WARNING_CASES: list[tuple[str, dict[str, str | bytes], list[Expected]]] = [
    (
        "shadowed by one earlier rule",
        {
            "p.yaml": "inbound:\n"
            "  - name: vehicles for all\n    categories: [vehicles]\n    answer: hit\n"
            "  - name: vehicles for DE\n    from: [DE]\n    categories: [vehicles]\n"
            "    purposes: [vehicle_check]\n    answer: full\n"
        },
        [
            (
                "p.yaml",
                5,
                5,
                "vehicles for DE",
                "never applies: every query it matches is decided earlier by 'vehicles for all'",
            )
        ],
    ),
    (
        "shadowed by several earlier rules together",
        {
            "p.yaml": "groups:\n  g: [DE, FR]\n"
            "inbound:\n"
            "  - name: border\n    agency_kinds: [border]\n    answer: hit\n"
            "  - name: others\n    agency_kinds: [ncb, police, customs, immigration]\n"
            "    answer: none\n"
            "  - name: late\n    from: [group:g]\n    answer: full\n    categories: [vehicles]\n"
        },
        [("p.yaml", 10, 5, "late", "decided earlier by 'border'")],
    ),
    (
        "group expansion counts: an earlier rule naming the members shadows a group rule",
        {
            "p.yaml": "groups:\n  g: [DE, FR-2]\n"
            "inbound:\n"
            "  - name: named\n    from: [FR, DE]\n    answer: hit\n"
            "  - name: by group\n    from: [group:g]\n    answer: full\n"
            "    categories: [artworks]\n"
        },
        [("p.yaml", 7, 5, "by group", "decided earlier by 'named'")],
    ),
    (
        "a rule naming only an empty group matches nothing",
        {
            "p.yaml": "groups:\n  nobody: []\n"
            "inbound:\n  - name: r\n    from: [group:nobody]\n    answer: hit\n"
        },
        [
            ("p.yaml", 2, 3, None, "group 'nobody' is empty"),
            ("p.yaml", 4, 5, "r", "never applies: it matches no query"),
        ],
    ),
    (
        "from '*' with full on a person category",
        {
            "p.yaml": "inbound:\n"
            "  - name: everyone, wanted persons\n    from: '*'\n"
            "    categories: [wanted_persons, vehicles]\n    answer: full\n"
            "  - name: everything to everyone\n    answer: full\n"
        },
        [
            (
                "p.yaml",
                5,
                13,
                "everyone, wanted persons",
                "every peer gets full records of wanted_persons;",
            ),
            (
                "p.yaml",
                7,
                13,
                "everything to everyone",
                "every peer gets full records of terrorism_suspects, wanted_persons",
            ),
        ],
    ),
    (
        "notify without any channel",
        {"p.yaml": "inbound:\n  - name: r\n    answer: hit\n    notify: always\n"},
        [("p.yaml", 4, 13, "r", "notify: always but no channel")],
    ),
    (
        "a watch without any channel",
        {"p.yaml": "watch:\n  - peer: RU\n"},
        [("p.yaml", 2, 5, "watch[0] RU", "no channel")],
    ),
    (
        "redundant outbound rule",
        {
            "p.yaml": "groups:\n  g: [DE, FR]\n"
            "outbound:\n  - agency: '*'\n    to: [group:g]\n"
            "  - agency: customs\n    to: [FR-2, DE]\n    categories: [vehicles]\n"
        },
        [("p.yaml", 6, 5, "outbound[1] customs", "redundant: 'outbound[0] *' (")],
    ),
]


WARNING_CASES += [
    (
        "release: approval with nobody to tell",
        {"p.yaml": "inbound:\n  - name: r\n    answer: summary\n    release: approval\n"},
        [("p.yaml", 4, 14, "r", "release: approval but no channel")],
    ),
]


@pytest.mark.parametrize(
    ("files", "expected"),
    [pytest.param(files, expected, id=name) for name, files, expected in WARNING_CASES],
)
def test_warnings(tmp_path: Path, files: dict[str, str | bytes], expected: list[Expected]) -> None:
    write(tmp_path, files)
    report = check_policy(tmp_path)
    assert report.errors == ()
    assert report.policy is not None  # warnings never block a load
    assert_matches(found(report, tmp_path, "warning"), expected)
    assert all(d.severity == "warning" for d in report.warnings)


@pytest.mark.parametrize(
    "text",
    [
        # an earlier rule that needs a case reference does not cover queries without one
        "inbound:\n  - {name: a, require_case: true, answer: hit}\n  - {name: b, answer: hit}\n",
        # one node of a country does not cover the country
        "inbound:\n  - {name: a, from: [FR-2], answer: hit}\n"
        "  - {name: b, from: [FR], answer: hit}\n",
        # a narrower earlier rule leaves the rest to the later one
        "inbound:\n  - {name: a, purposes: [border_control], answer: hit}\n"
        "  - {name: b, answer: none}\n",
        "outbound:\n  - {agency: customs, to: [FR-2]}\n  - {agency: customs, to: [FR]}\n",
    ],
)
def test_no_false_shadowing(tmp_path: Path, text: str) -> None:
    write(tmp_path, {"p.yaml": text})
    report = check_policy(tmp_path)
    assert report.errors == ()
    assert report.warnings == ()


def test_country_rule_shadows_its_node(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"p.yaml": "inbound:\n  - {name: a, from: [FR], answer: hit}\n"
         "  - {name: b, from: [FR-2], answer: full}\n"},
    )  # fmt: skip
    (warning,) = check_policy(tmp_path).warnings
    assert (warning.rule, warning.line) == ("b", 3)


def test_a_yml_file_is_an_error_so_a_rename_never_widens(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("inbound: []\n")
    (tmp_path / "q.yml").write_text("inbound: []\n")
    report = check_policy(tmp_path)
    assert report.policy is None
    (error,) = report.errors
    assert error.file == str(tmp_path / "q.yml")
    assert "rename it to .yaml" in error.message


def test_a_yml_file_does_not_hide_the_errors_of_the_others(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("inbound:\n  - name: typo\n    from: [FR]\n    answer: ful\n")
    (tmp_path / "q.yml").write_text("inbound: []\n")
    report = check_policy(tmp_path)
    assert report.policy is None
    assert {e.file for e in report.errors} == {str(tmp_path / "p.yaml"), str(tmp_path / "q.yml")}
