"""Set up a new node's directory: config, keys, TLS certificate, empty trust store, policies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connector.crypto.jws import SigningKey
from connector.crypto.keyfiles import make_tls_certificate, write_private, write_signing_key
from connector.errors import ConfigError
from connector.peers.trust import TrustStore, dump_trust_store
from connector.policy import DEFAULT_POLICY_YAML
from connector.vocabulary import is_node_id, node_id_problem


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    config: Path
    key: Path
    tls_cert: Path
    tls_key: Path
    peers: Path
    policies: Path


def layout(directory: Path) -> Layout:
    return Layout(
        config=directory / "connector.yaml",
        key=directory / "keys" / "node.jwk",
        tls_cert=directory / "tls" / "cert.pem",
        tls_key=directory / "tls" / "key.pem",
        peers=directory / "peers.yaml",
        policies=directory / "policies",
    )


CONFIG_TEMPLATE = """\
# ncb-connector node configuration. Unknown keys are errors; paths are relative to this file.
node: {node}
key_file: keys/node.jwk            # Ed25519 signing key (JWK); mode 0600
tls:
  cert: tls/cert.pem               # self-signed; peers pin its SHA-256 fingerprint
  key: tls/key.pem
listen:
  peer:                            # the peer API (TLS): /v1/query, /v1/release, /v1/identity, …
    host: {host}
    port: {peer_port}
  local:                           # /livez, /readyz, the agencies' API
    host: 127.0.0.1
    port: {local_port}
# public_url: https://ncb.example.org:8443   # what /v1/identity advertises
databases:
  records: sqlite:///{state}records.db
  enquiries: sqlite:///{state}enquiries.db
  commit_delay_ms: 2               # group commit: how long a row waits for others to share an fsync
policy_dir: policies
peers_file: peers.yaml
policy_reload_interval: 5          # seconds between checks for edited policy files; 0 = SIGHUP only
logging:
  format: auto                     # json when not on a terminal
  level: info
outgoing:
  timeout: 5
  query_lifetime: 60
# witness:                         # our log's checkpoints kept by the peers (protocol.md §13)
#   send: true
#   interval_s: 60                 # rows newer than the last checkpoint sent are unwitnessed
# retention:                       # the enquiry log's oldest rows moved to signed archive files
#   archive_after_days: 0          # 0: keep every row in the log (operations.md §11)
#   dir: archive                   # beside the log; copy new files off the host
#   interval_s: 86400
# approvals:                       # releases that wait for an operator (operations.md §8.1)
#   check_interval_s: 10           # expire and remind
#   poll_interval_s: 15            # ask peers for releases; tell peers asking us to wait as long
#   agency_channels: {{}}            # agency: channel told when a release it waited for came
# federation:
#   local_hosts: []                # names it answers besides IP addresses and localhost
#   auth_failures: 10              # failed agency tokens per address in the window, then 429
#   auth_failure_window_s: 60
"""


def init_node(
    directory: Path,
    *,
    node: str,
    host: str = "127.0.0.1",
    peer_port: int = 8443,
    local_port: int = 8080,
    state_dir: Path | None = None,
) -> Layout:
    """Write a complete node; refuses to touch a directory that already holds one."""
    if not is_node_id(node):
        raise ConfigError(f"--node: {node_id_problem(node, groups_allowed=False)}")
    paths = layout(directory)
    existing = [p for p in (paths.config, paths.key, paths.peers) if p.exists()]
    if existing:
        raise ConfigError(
            f"{directory} already holds a node ({existing[0].name}); refusing to overwrite it"
        )
    directory.mkdir(parents=True, exist_ok=True)
    paths.key.parent.mkdir(mode=0o700, exist_ok=True)
    paths.tls_cert.parent.mkdir(mode=0o700, exist_ok=True)
    write_signing_key(paths.key, SigningKey.generate())
    hosts = sorted({host, "127.0.0.1", "::1", "localhost"})
    cert_pem, key_pem = make_tls_certificate(node, hosts)
    paths.tls_cert.write_bytes(cert_pem)
    write_private(paths.tls_key, key_pem)
    paths.peers.write_text(dump_trust_store(TrustStore.of([])), encoding="utf-8")
    paths.policies.mkdir(exist_ok=True)
    (paths.policies / "00-default.yaml").write_text(DEFAULT_POLICY_YAML, encoding="utf-8")
    state = ""
    if state_dir is not None:
        state_dir = state_dir.resolve()  # the config resolves relative paths from its own dir
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state = f"{state_dir}/"
    paths.config.write_text(
        CONFIG_TEMPLATE.format(
            node=node, host=host, peer_port=peer_port, local_port=local_port, state=state
        ),
        encoding="utf-8",
    )
    return paths
