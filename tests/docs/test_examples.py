"""Every example in docs/ is generated, compared with a real run by a named test, or checked
here against the code: commands against the CLI, connector.yaml and sources.yaml snippets
against their models, JSON parsed; docs/architecture.md names only what the repository holds."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import orjson
import pytest
import yaml
from support.docs import DOCS, ROOT, Block, blocks, example

from connector.cli import main
from connector.cli.lazy import LazyGroup
from connector.node.init import CONFIG_TEMPLATE
from connector.settings.config import Settings, load_settings
from connector.sources.model import load_sources

EVERY = [b for doc in sorted(DOCS.glob("*.md")) for b in blocks(doc)]
TESTS = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))


def _kind(block: Block) -> str:
    """How the block is kept true."""
    if block.generated:
        return "generated"
    if block.name is not None:
        return "named"
    if block.lang == "sh":
        return "commands"
    if block.lang == "yaml":
        return "yaml"
    if block.lang == "json" and "…" not in block.text:
        return "json"
    return "unchecked"


def test_every_example_is_kept_true() -> None:
    unchecked = [b.where for b in EVERY if _kind(b) == "unchecked"]
    assert not unchecked, (
        "each of these needs `<!-- example: NAME -->` on the line before it and a test "
        f"comparing it with a real run: {unchecked}"
    )
    for b in EVERY:
        if b.name is not None:
            assert f'"{b.name}"' in TESTS, f"{b.where}: no test reads example {b.name!r}"


# --- commands --------------------------------------------------------------------------------


def _invocations(text: str) -> list[list[str]]:
    """Each `ncb-connector …` command of a shell block, as its words after the program."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = []
    for line in joined.splitlines():
        code = line.split(" #", 1)[0].strip()
        # The program, not a path (/etc/ncb-connector) nor a user (sudo -u ncb-connector).
        starts = [
            m.end() for m in re.finditer(r"(?<![/\w-])(?<!-u )ncb-connector\s+(?=[a-z-])", code)
        ]
        if not starts or code.startswith(("apt ", "systemctl ")):
            continue
        words = shlex.split(code[starts[-1] :].split(" | ", 1)[0].split(" && ", 1)[0])
        # A synopsis: [--pending|--dead] is one of its options, … stands for more.
        found.append([w.strip("[]").split("|", 1)[0] for w in words if w.strip("[]…")])
    return found


def _parse(words: list[str]) -> None:
    """Parse `words` as `ncb-connector` does, without running anything: the command exists
    and takes every option given (placeholders such as FILE stand for any value)."""
    command: click.Command = main
    ctx = click.Context(main)
    while isinstance(command, LazyGroup) and words and not words[0].startswith("-"):
        sub = command.get_command(ctx, words[0])
        assert sub is not None, f"no command {words[0]!r}"
        command, words = sub, words[1:]
    if words in (["--help"], ["-h"]):
        return
    parser = command.make_parser(click.Context(command))
    parser.parse_args(list(words))  # raises NoSuchOption for an option that does not exist


COMMANDS = [
    pytest.param(words, id=f"{b.where} {' '.join(words[:2])}")
    for b in EVERY
    if _kind(b) == "commands"
    for words in _invocations(b.text)
]


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("words", COMMANDS)
def test_each_documented_command_is_one_the_cli_takes(words: list[str]) -> None:
    _parse(words)


def test_the_readme_commands_too() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    shells = re.findall(r"^```sh\n(.*?)^```", text, flags=re.S | re.M)
    invocations = [w for block in shells for w in _invocations(block)]
    assert len(invocations) > 15
    for words in invocations:
        _parse(words)


# --- configuration snippets ------------------------------------------------------------------

BASE = CONFIG_TEMPLATE.format(
    node="FR", host="127.0.0.1", peer_port=8443, local_port=8080, state=""
)
SETTINGS_KEYS = {f.alias or name for name, f in Settings.model_fields.items()}


@pytest.mark.parametrize("block", [b for b in EVERY if _kind(b) == "yaml"], ids=lambda b: b.where)
def test_each_yaml_example_is_what_its_file_takes(block: Block, tmp_path: Path) -> None:
    snippet = yaml.safe_load(block.text)
    if block.doc == "policies.md":
        return  # tests/policy/test_policy_examples.py checks each as a policy
    assert isinstance(snippet, dict), block.where
    if "scrape_configs" in snippet:  # Prometheus's, pointing at what the package installs
        (rules,) = snippet["rule_files"]
        assert (ROOT / "packaging" / "monitoring" / Path(rules).name).exists()
        return
    if set(snippet) == {"sources"}:
        path = tmp_path / "sources.yaml"
        path.write_text(block.text, encoding="utf-8")
        assert load_sources(path).sources, block.where
        return
    assert set(snippet) <= SETTINGS_KEYS, block.where
    config = {**yaml.safe_load(BASE), **snippet}
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = load_settings(path)
    for key, value in snippet.items():
        loaded = getattr(settings, key)
        shown = loaded.model_dump() if hasattr(loaded, "model_dump") else loaded
        if isinstance(value, dict):
            for member, given in value.items():
                if not isinstance(given, dict):
                    held = shown[member]
                    held = str(held) if isinstance(held, Path) else held
                    assert held == given, (block.where, key, member)


def test_each_json_example_parses() -> None:
    for block in EVERY:
        if _kind(block) == "json":
            orjson.loads(block.text)


# --- the architecture names only what the repository holds ------------------------------------


def test_architecture_cites_only_files_of_the_repository() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)", text):
        if not target.startswith(("http://", "https://")):
            assert (DOCS / target).exists() or (ROOT / target).exists(), target
    # Files of the code and docs; a node's own files (keys/rotation.json) are not cited.
    for path in re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:py|md|toml|sh))`", text):
        found = (ROOT / path).exists() or (ROOT / "connector" / path).exists()
        found = found or any(ROOT.glob(f"**/{path}"))
        assert found, f"docs/architecture.md cites {path}, which the repository does not hold"
    assert "/home/" not in text
    assert "/tmp/" not in text


def test_architecture_lists_every_package_and_module() -> None:
    listing = example("architecture.md", "packages")
    named = set(re.findall(r"^  (\w+)(?:/|\.py)", listing, flags=re.M))
    held = {p.stem for p in (ROOT / "connector").iterdir() if p.suffix == ".py" or p.is_dir()}
    held -= {"__init__", "__main__", "__pycache__", "data", "py"}
    assert named == held


def test_architecture_layers_are_the_import_contract() -> None:
    layers = [line.strip() for line in example("architecture.md", "layers").splitlines()]
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    assert layers == [layer.replace("connector.", "") for layer in contract["layers"]]


# --- named examples checked here -----------------------------------------------------------


def test_the_error_document_is_what_a_failing_command_prints(tmp_path: Path) -> None:
    from click.testing import CliRunner

    shown = orjson.loads(example("operations.md", "json-error"))
    missing = tmp_path / "connector.yaml"
    real = orjson.loads(
        CliRunner().invoke(main, ["db", "status", "--json", "--config", str(missing)]).stdout
    )
    assert set(real) == set(shown) == {"error"}
    assert set(real["error"]) == set(shown["error"])
    assert real["error"]["code"] == shown["error"]["code"]
    before, after = shown["error"]["message"].split("…", 1)[0], "no such file. Give --config"
    assert real["error"]["message"].startswith(before)
    assert after in real["error"]["message"]


def test_the_diagnostic_format_is_how_a_problem_prints() -> None:
    from connector.policy import Diagnostic

    shown = example("policies.md", "diagnostic-format").strip()
    problem = Diagnostic(
        file="FILE", line=7, column=5, rule="RULE NAME", message="MESSAGE", severity="error"
    )
    assert str(problem) == shown.replace("LINE", "7").replace("COLUMN", "5")


def test_the_policy_api_example_runs(tmp_path: Path) -> None:
    from connector.policy import CheckReport, InboundDecision, Policy
    from connector.vocabulary import AgencyKind, Category, Purpose

    directory = ROOT / "policies"
    code = example("policies.md", "policy-api").replace(
        '"/etc/ncb-connector/policies"', repr(str(directory))
    )
    scope = {
        "Path": Path,
        "directory": directory,
        "AgencyKind": AgencyKind,
        "Purpose": Purpose,
        "Category": Category,
        "Policy": Policy,
    }
    exec(compile(code, "docs/policies.md", "exec"), scope)
    report, decision = scope["report"], scope["d"]
    assert isinstance(report, CheckReport)
    assert report.ok
    assert isinstance(decision, InboundDecision)
    assert decision.rule is not None  # the example policies decide this query


def test_the_thumbprint_input_is_what_the_kid_hashes() -> None:
    from connector.crypto.jws import jwk_thumbprint

    shown = example("protocol.md", "thumbprint-input").strip()
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"  # RFC 8037 A.1
    member_sorted = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}).decode()
    assert shown.replace("<x>", x) == member_sorted
    assert jwk_thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
