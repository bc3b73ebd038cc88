"""The one YAML reader: libyaml and PyYAML's parser read every admin file alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from support.docs import assert_shows
from support.processes import cli, init
from yaml.nodes import MappingNode, Node, ScalarNode

from connector.crypto.jws import SigningKey
from connector.demo import demo_policy
from connector.errors import ConfigError, TrustStoreError
from connector.node.init import CONFIG_TEMPLATE
from connector.peers.trust import Peer, PinnedKey, TrustStore, dump_trust_store
from connector.policy import DEFAULT_POLICY_YAML
from connector.settings import yamlfile
from connector.settings.yamlfile import YamlSyntaxError, compose, load_yaml_model


def _tree(node: Node, text: str) -> Any:
    """Tags, values and positions; an end at the end of the text is written alike by both."""
    end = node.end_mark
    where = (
        node.start_mark.line,
        node.start_mark.column,
        "end" if end.index >= len(text) else (end.line, end.column),
    )
    if isinstance(node, ScalarNode):
        return (node.tag, node.value, where)
    if isinstance(node, MappingNode):
        return (node.tag, where, [(_tree(k, text), _tree(v, text)) for k, v in node.value])
    return (node.tag, where, [_tree(item, text) for item in node.value])


def _trust_store() -> str:
    key = SigningKey.generate().public
    peers = [
        Peer(
            id=node,
            url=f"https://ncb.{node.lower()}.example:8443",
            keys=(PinnedKey(key=key if node == "NO" else SigningKey.generate().public),),
            tls_fingerprint=":".join(["AB"] * 32),
        )
        for node in ("NO", "DE", "FR-2")
    ]
    return dump_trust_store(TrustStore.of(peers))


TEXTS = {
    "connector.yaml": CONFIG_TEMPLATE.format(
        node="NO", host="127.0.0.1", peer_port=8443, local_port=8080, state=""
    ),
    "default policy": DEFAULT_POLICY_YAML,
    "demo policy": demo_policy("FR"),
    "flow and quotes": "a: {b: [1, \"two\", 'NO'], c: ~}\r\nd: é😀 # comment\n",
    "no final newline": "groups:\n  nordic: [DK, FI, NO, SE]\ninbound:\n- name: x\n  from: '*'",
}


def _agree(text: str) -> None:
    if yamlfile._FastLoader is None:
        pytest.skip("PyYAML without libyaml")
    fast, reference = yaml.compose(text, Loader=yamlfile._FastLoader), yamlfile._compose(text)
    assert fast is not None
    assert reference is not None
    assert _tree(fast, text) == _tree(reference, text)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_both_parsers_build_the_same_tree(name: str) -> None:
    _agree(TEXTS[name])


def test_a_trust_store_reads_alike() -> None:
    _agree(_trust_store())


@pytest.mark.parametrize(
    "text",
    [
        "a:\tb\n",  # libyaml takes a tab for a space
        "a: {b?c}\n",  # libyaml takes b?c for text
        "a: |# comment\n  text\n",  # libyaml takes the comment after a block indicator
    ],
)
def test_what_libyaml_alone_accepts_stays_an_error(text: str) -> None:
    with pytest.raises(YamlSyntaxError):
        compose(text)


def test_an_empty_tag_is_null_as_before() -> None:
    root = compose("a: !\nb: 1\n")
    assert isinstance(root, MappingNode)
    assert root.value[0][1].value == ""
    assert root.value[0][1].tag == "tag:yaml.org,2002:null"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    countries: list[str] = []
    limit: int = 1


def test_a_file_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("countries: [NO, SE]\nlimit: many\nlimt: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_yaml_model(path, _Model)
    assert caught.value.extra["errors"] == [
        f"{path}:2:8: limit: Input should be a valid integer, unable to parse string as an integer",
        f"{path}:3:1: unknown key 'limt' (did you mean 'limit'?); allowed here: countries, limit",
    ]
    path.write_text("countries: [NO, SE]\n", encoding="utf-8")
    assert load_yaml_model(path, _Model).countries == ["NO", "SE"]


def test_the_error_class_and_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_yaml_model(path, _Model)
    assert load_yaml_model(path, _Model, empty_ok=True) == _Model()
    path.write_text("limit: [1]\n", encoding="utf-8")
    with pytest.raises(TrustStoreError, match=r"x\.yaml:1:8: limit: "):
        load_yaml_model(path, _Model, error=TrustStoreError)


def test_connector_yaml_errors_name_the_key_the_admin_meant(tmp_path: Path) -> None:
    """As policy errors do: file:line, where, what is wrong, and the closest allowed key or
    value — nested, in a list of channels, and in a channel's type."""
    config, _, _ = init(tmp_path, "FR")
    text = config.read_text(encoding="utf-8")
    text = text.replace("policy_dir: policies", "polcy_dir: policies")
    text = text.replace("  format: auto", "  format: jsn")
    text = text.replace("    port: ", "    prot: ", 1)
    text += (
        "notifications:\n  channels:\n"
        "    duty: {type: webhook, urll: 'http://127.0.0.1:1'}\n"
        "    mail: {type: emial}\n"
    )
    config.write_text(text, encoding="utf-8")
    proc = cli("config", "check", "--json", config=config, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = orjson.loads(proc.stdout)["errors"]
    lines = {e.split(": ", 1)[1] for e in errors}
    assert lines >= {
        "listen.peer: missing required key 'port'",
        "listen.peer: unknown key 'prot' (did you mean 'port'?); allowed here: host, port, "
        "max_connections, max_connections_per_address",
        "logging.format: Input should be 'auto', 'json' or 'console' (did you mean 'json'?)",
        "notifications.channels.duty: missing required key 'url'",
        "notifications.channels.duty: unknown key 'urll' (did you mean 'url'?); allowed here: "
        "digest, digest_only, type, url, tls_fingerprint, insecure, timeout",
    }, errors
    assert any(e.endswith("'webhook', 'email', 'log' (did you mean 'email'?)") for e in errors), (
        errors
    )
    top = next(e for e in errors if "polcy_dir" in e)
    assert top.startswith(f"{config}:")
    assert ": unknown key 'polcy_dir' (did you mean 'policy_dir'?); allowed here: node, " in top
    assert "base_dir" not in top  # ours, not the admin's
    # Without --json: one `error:` line a problem, not one line joined by semicolons.
    proc = cli("config", "check", config=config, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("error: ") == len(errors), proc.stderr
    assert_shows("operations.md", "config-check-error", proc.stderr)


def test_config_check_shows_every_error_of_a_policy_file(tmp_path: Path) -> None:
    """As `policy check` does: each error at its line, with its rule, not only the first."""
    config, _, _ = init(tmp_path, "FR")
    (config.parent / "policies" / "20-bad.yaml").write_text(
        "inbound:\n"
        "  - name: one\n    from: [DEE]\n    answer: hit\n"
        "  - name: two\n    from: [DE]\n    answer: fullish\n",
        encoding="utf-8",
    )
    proc = cli("config", "check", config=config, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("error: ")
    assert "20-bad.yaml:3:12: [one] from: 'DEE' is not a node id" in lines[0]
    assert "20-bad.yaml:7:13: [two] answer: unknown answer level 'fullish'" in lines[1]
    assert "(did you mean 'full'?)" in lines[1]
    doc = orjson.loads(cli("config", "check", "--json", config=config, check=False).stdout)
    assert doc["ok"] is False
    assert [e.split("20-bad.yaml:", 1)[1][:5] for e in doc["errors"]] == ["3:12:", "7:13:"]
    assert doc["error"]["code"] == "policy_invalid"
    assert doc["error"]["details"] == doc["errors"]
