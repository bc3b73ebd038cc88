"""`ncb-connector`: every command group and command by name, each imported when it runs."""

from __future__ import annotations

import click

from connector.cli.lazy import Lazy, LazyGroup

# Short help here lets `ncb-connector --help` and `ncb-connector GROUP --help` list the
# commands without importing them (and with them sqlalchemy, aiohttp, pydantic, the kinds).
COMMANDS: dict[str, Lazy | click.Command] = {
    "init": Lazy(
        target="connector.cli.node:init",
        help=(
            "Create a node: config, Ed25519 key, TLS certificate, empty peers, default-deny policy."
        ),
    ),
    "run": Lazy(
        target="connector.cli.node:run",
        help="Serve the peer API and the local API until SIGTERM (SIGHUP reloads).",
    ),
    "config": LazyGroup(
        name="config",
        help="The node's configuration.",
        lazy={
            "check": Lazy(
                target="connector.cli.config:config_check",
                help=(
                    "Validate connector.yaml, the key files, peers.yaml, sources.yaml, the "
                    "agencies file, the console's accounts and the policy directory, together, "
                    "as a starting or reloading node loads them."
                ),
            ),
        },
    ),
    "keys": LazyGroup(
        name="keys",
        help="The node's keys and TLS certificate: show, rotate, renew.",
        lazy={
            "renew-tls": Lazy(
                target="connector.cli.keys:keys_renew_tls",
                help=(
                    "Make the next TLS key and self-signed certificate for the same names "
                    "and publish its fingerprint; the node presents it after "
                    "keys.activate_after_s (or at once with --activate) without a restart, "
                    "and peers accept the old one for keys.overlap_s more."
                ),
            ),
            "rotate": Lazy(
                target="connector.cli.keys:keys_rotate",
                help=(
                    "Make the next signing key and publish it, signed by the current key; "
                    "the node signs with it after keys.activate_after_s (or at once with "
                    "--activate, for a rotation already published) and peers accept the old "
                    "key for keys.overlap_s more."
                ),
            ),
            "show": Lazy(
                target="connector.cli.keys:keys_show",
                help=(
                    "Print the public JWK, its RFC 7638 thumbprint and the TLS certificate "
                    "fingerprint in force, and during a rotation the next and retiring keys "
                    "and certificates with their dates."
                ),
            ),
        },
    ),
    "peers": LazyGroup(
        name="peers",
        help="The trust store (peers.yaml).",
        lazy={
            "add": Lazy(
                target="connector.cli.peers:peers_add",
                help="Trust a peer: pin its key and TLS fingerprint.",
            ),
            "discovered": Lazy(
                target="connector.cli.peers:peers_discovered",
                help=(
                    "Nodes the running node found on the LAN (discovery.mdns): none is trusted by"
                    " that."
                ),
            ),
            "list": Lazy(
                target="connector.cli.peers:peers_list",
                help="List trusted peers.",
            ),
            "remove": Lazy(
                target="connector.cli.peers:peers_remove",
                help="Stop trusting a peer.",
            ),
            "status": Lazy(
                target="connector.cli.peers:peers_status",
                help=(
                    "Each peer's last health check by the running node: up or down, "
                    "latency, key, TLS; and this node's own certificate when it ends within "
                    "federation.key_expiry_warning_days. The table exits 1 when a peer is "
                    "down; --json exits 0 and says so in `up`, and gives `own`: "
                    '{"certificate_expires", "certificate_expiring"} (null when the keys '
                    "cannot be read by this user)."
                ),
            ),
        },
    ),
    "agencies": LazyGroup(
        name="agencies",
        help=(
            "National agencies that ask peers through this node (the local API), and their tokens."
        ),
        lazy={
            "add": Lazy(
                target="connector.cli.agencies:agencies_add",
                help="Register an agency and print its API token, once (only its hash is kept).",
            ),
            "disable": Lazy(
                target="connector.cli.agencies:agencies_disable",
                help=(
                    "Refuse an agency's token from its next request on (a running node re-reads "
                    "the file)."
                ),
            ),
            "enable": Lazy(
                target="connector.cli.agencies:agencies_enable",
                help="Accept a disabled agency's token again.",
            ),
            "list": Lazy(
                target="connector.cli.agencies:agencies_list",
                help="Agencies, their kinds and state (tokens are never shown again).",
            ),
            "rotate": Lazy(
                target="connector.cli.agencies:agencies_rotate",
                help="Give an agency a new token; the old one stops working at once.",
            ),
        },
    ),
    "users": LazyGroup(
        name="users",
        help="The operator console's accounts: roles, passwords, a second factor.",
        lazy={
            "add": Lazy(
                target="connector.cli.users:users_add",
                help="Make a console account with a role (asks for its password).",
            ),
            "disable": Lazy(
                target="connector.cli.users:users_disable",
                help="Refuse an account's logins and end its sessions.",
            ),
            "list": Lazy(
                target="connector.cli.users:users_list",
                help="Accounts, their roles and state (never a password or a secret).",
            ),
            "passwd": Lazy(
                target="connector.cli.users:users_passwd",
                help="Set an account's password (and enable it again); --totp, --no-totp.",
            ),
        },
    ),
    "db": LazyGroup(
        name="db",
        help="Database schemas: which revision each database is at, and upgrading them.",
        lazy={
            "status": Lazy(
                target="connector.cli.db:db_status",
                help=(
                    "Each database's schema revision beside the one this version needs; exits 1 "
                    "when one is not at it (a node would refuse to start)."
                ),
            ),
            "upgrade": Lazy(
                target="connector.cli.db:db_upgrade",
                help=(
                    "Bring both databases to the schema this version needs (stop the node first)."
                ),
            ),
        },
    ),
    "backup": LazyGroup(
        name="backup",
        help="Backups: one archive of the node signed by its key, checked, restored elsewhere.",
        lazy={
            "create": Lazy(
                target="connector.cli.backup:backup_create",
                help=(
                    "Write one archive of the node into DIRECTORY: config, keys, peers, "
                    "policies, sources, agencies, both databases (copied live) and the kept "
                    "checkpoint, with a manifest of their SHA-256 digests signed by the node's "
                    "key."
                ),
            ),
            "restore": Lazy(
                target="connector.cli.backup:backup_restore",
                help=(
                    "Restore an archive into new directories, once it verifies with the key in "
                    "it; writes a connector.yaml naming the restored files."
                ),
            ),
            "verify": Lazy(
                target="connector.cli.backup:backup_verify",
                help=(
                    "Check an archive: every file against the signed manifest, the signature "
                    "with the key in the archive and, when run on a node (its config exists), "
                    "with that node's current key."
                ),
            ),
        },
    ),
    "records": LazyGroup(
        name="records",
        help="National records behind this node.",
        lazy={
            "import": Lazy(
                target="connector.cli.records:records_import",
                help=(
                    "Upsert records from NDJSON, CSV or FollowTheMoney entities; bad lines are "
                    "reported, good lines imported."
                ),
            ),
            "reindex": Lazy(
                target="connector.cli.records:records_reindex",
                help=(
                    "Make every record's search keys anew from its fields (after an upgrade that "
                    "changed name matching)."
                ),
            ),
            "remove": Lazy(
                target="connector.cli.records:records_remove",
                help="Remove one record (a vehicle that was found, say); it is no longer a hit.",
            ),
            "show": Lazy(
                target="connector.cli.records:records_show",
                help="One record in full, by its ref (FR:travel_documents:ID) or category/ID.",
            ),
            "stats": Lazy(
                target="connector.cli.records:records_stats",
                help="Records held per category.",
            ),
            "sync": Lazy(
                target="connector.cli.records:records_sync",
                help=(
                    "Pull what changed in the national databases of sources.yaml (read only); "
                    "exits 1 when a row was rejected or removals were refused."
                ),
            ),
        },
    ),
    "policy": LazyGroup(
        name="policy",
        help="The access policy (policies/*.yaml).",
        lazy={
            "check": Lazy(
                target="connector.cli.policy:policy_check",
                help=(
                    "Validate a policy directory: every error with file, line and rule name (with"
                    " the config, also that every notification channel it names is defined)."
                ),
            ),
            "diff": Lazy(
                target="connector.cli.policy:policy_diff",
                help=(
                    "Every (peer, category, agency kind, purpose) whose outcome changes: read "
                    "before reload."
                ),
            ),
            "explain": Lazy(
                target="connector.cli.policy:policy_explain",
                help=(
                    "Which rule decides a query, the level, the fields a peer receives and those "
                    "redacted."
                ),
            ),
            "matrix": Lazy(
                target="connector.cli.policy:policy_matrix",
                help=(
                    "Who sees what: peers × categories → the most each can get (* = depends on "
                    "the query)."
                ),
            ),
        },
    ),
    "enquiries": LazyGroup(
        name="enquiries",
        help="The enquiry log.",
        lazy={
            "list": Lazy(
                target="connector.cli.enquiries:enquiries_list",
                help="List enquiries, oldest first.",
            ),
            "show": Lazy(
                target="connector.cli.enquiries:enquiries_show",
                help="One enquiry in full, with the deciding rules and the policy digest.",
            ),
            "verify": Lazy(
                target="connector.cli.enquiries:enquiries_verify",
                help="Check the hash chain; exit 1 and name the first broken row.",
            ),
            "archive": Lazy(
                target="connector.cli.enquiries:enquiries_archive",
                help=(
                    "Move the oldest rows of the enquiry log into one signed, compressed "
                    "archive file."
                ),
            ),
        },
    ),
    "audit": LazyGroup(
        name="audit",
        help="The admin audit trail: every change admins made, by whom, hash-chained.",
        lazy={
            "list": Lazy(
                target="connector.cli.audit:audit_list",
                help="Changes admins made, oldest first: when, who, what, to what.",
            ),
            "verify": Lazy(
                target="connector.cli.audit:audit_verify",
                help=(
                    "Check the trail's hash chain; name the first line edited, deleted, out of "
                    "order or partial."
                ),
            ),
        },
    ),
    "approvals": LazyGroup(
        name="approvals",
        help=(
            "Releases that wait for an operator (release: approval): list, show, decide; "
            "and those this node awaits from peers."
        ),
        lazy={
            "list": Lazy(
                target="connector.cli.approvals:approvals_list",
                help="Releases waiting for an operator, or decided ones (--state).",
            ),
            "show": Lazy(
                target="connector.cli.approvals:approvals_show",
                help="One approval in full: who asked, what, the records held, the rule.",
            ),
            "approve": Lazy(
                target="connector.cli.approvals:approvals_approve",
                help="Release the held records to the peer that asked, saying why.",
            ),
            "deny": Lazy(
                target="connector.cli.approvals:approvals_deny",
                help="Refuse the release, saying why; the peer gets the checks denied.",
            ),
            "awaited": Lazy(
                target="connector.cli.approvals:approvals_awaited",
                help="Releases this node waits for from peers' operators: our agencies' checks"
                " answered pending.",
            ),
        },
    ),
    "notifications": LazyGroup(
        name="notifications",
        help="Notices to the NCB about foreign enquiries: the outbox and the channels.",
        lazy={
            "list": Lazy(
                target="connector.cli.notifications:notifications_list",
                help="Notices with their state, attempts and last error.",
            ),
            "retry": Lazy(
                target="connector.cli.notifications:notifications_retry",
                help="Make notices (or every dead one) due again; a running node delivers them.",
            ),
            "test": Lazy(
                target="connector.cli.notifications:notifications_test",
                help="Send a test notice through CHANNEL now and say whether it arrived.",
            ),
        },
    ),
    "maintenance": LazyGroup(
        name="maintenance",
        help="Stop answering peers for a while (503, Retry-After) without stopping the node.",
        lazy={
            "on": Lazy(
                target="connector.cli.maintenance:maintenance_on",
                help="Switch maintenance on: peers get 503 and /readyz is 503 within seconds.",
            ),
            "off": Lazy(
                target="connector.cli.maintenance:maintenance_off",
                help="Switch maintenance off: the node answers peers again.",
            ),
            "status": Lazy(
                target="connector.cli.maintenance:maintenance_status",
                help=(
                    "Whether maintenance is on, since when, by whom and why (exit 1 when it is on)."
                ),
            ),
        },
    ),
    "query": Lazy(
        target="connector.cli.query:query",
        help="Ask one peer; the signed answer is verified and the enquiry logged.",
    ),
    "search": Lazy(
        target="connector.cli.search:search",
        help=(
            "Check a subject (document, person, vehicle, DNA profile, fingerprint) against the "
            "national records and every allowed peer at once; a table fills in as peers answer."
        ),
    ),
    "demo": Lazy(
        target="connector.cli.demo:demo",
        help=(
            "Start a small network on loopback, run cross-border checks, print answers and logs."
        ),
    ),
}


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="ncb-connector")
def main() -> None:
    """A National Central Bureau's connector: answers peers' signed queries under the NCB's
    policy, logs every enquiry, and asks peers on behalf of national agencies."""
