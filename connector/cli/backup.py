"""`ncb-connector backup`: one signed archive of the node, checked, and restored elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.cli.common import (
    _json,
    _settings,
    config_option,
    handles_errors,
    json_option,
    record_change,
)
from connector.errors import BackupError
from connector.settings.config import load_settings
from connector.trail.entry import Action

if TYPE_CHECKING:
    from connector.node.backup import Manifest


def _manifest_json(manifest: Manifest) -> dict[str, Any]:
    return {
        "node": manifest.node,
        "kid": manifest.kid,
        "version": manifest.version,
        "created_at": manifest.to_json()["created_at"],
        "enquiry_log": {"seq": manifest.log_seq, "hash": manifest.log_hash},
        "admin_audit": (
            None
            if manifest.trail is None
            else {"seq": manifest.trail[0], "hash": manifest.trail[1]}
        ),
        "databases": [
            {"name": d.name, "backend": d.backend, "revision": d.revision}
            for d in manifest.databases
        ],
        "members": len(manifest.members),
    }


@click.command("create")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--keep",
    type=click.IntRange(1),
    default=None,
    help="Then delete this node's oldest archives in DIRECTORY beyond the newest N.",
)
@click.option(
    "--compress/--no-compress",
    default=True,
    show_default=True,
    help="gzip the archive (.tar.gz) or not (.tar).",
)
@config_option
@json_option
@handles_errors
def backup_create(
    directory: Path, keep: int | None, compress: bool, config_path: Path, as_json: bool
) -> None:
    """Write one archive of the node into DIRECTORY: config, keys, peers, policies, sources,
    agencies, both databases (copied live) and the kept checkpoint, with a manifest of their
    SHA-256 digests signed by the node's key. The archive is 0600: it holds the keys."""
    from connector.node.backup import create_backup

    settings = _settings(config_path)
    created = create_backup(settings, config_path, directory, keep=keep, compress=compress)
    manifest = created.manifest
    # After the archive is whole, so the archive does not hold its own entry: a copy of
    # every key and database left the node, and who took it is on record.
    record_change(
        settings,
        Action.BACKUP_CREATED,
        str(created.path),
        size=created.size,
        enquiry_log_seq=manifest.log_seq,
        removed=[str(p) for p in created.removed],
    )
    if as_json:
        _json(
            {
                "archive": str(created.path),
                "size": created.size,
                **_manifest_json(manifest),
                "removed": [str(p) for p in created.removed],
                "seconds": created.seconds,
            }
        )
        return
    click.echo(
        f"{created.path}: {len(manifest.members)} files, {created.size} bytes, "
        f"enquiry log up to row {manifest.log_seq}, in {created.seconds:.1f} s"
    )
    for path in created.removed:
        click.echo(f"removed {path}")


@click.command("verify")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@json_option
@handles_errors
def backup_verify(archive: Path, config_path: Path, as_json: bool) -> None:
    """Check an archive: every file against the signed manifest, the signature with the key
    in the archive and, when run on a node (its config exists), with that node's current
    key. Exits 1 naming each file that is missing, added or changed."""
    from connector.node.backup import node_key, verify_backup

    if not archive.exists():
        raise BackupError(f"cannot read {archive}: no such file")
    node = node_key(config_path)
    checked = verify_backup(archive, node=node)
    if as_json:
        _json(
            {
                "ok": checked.ok,
                "archive": str(archive),
                **(_manifest_json(checked.manifest) if checked.manifest else {}),
                "archive_key": checked.archive_key,
                "node_key": checked.node_key,
                "problems": list(checked.problems),
            }
        )
    else:
        manifest = checked.manifest
        if manifest is not None:
            click.echo(
                f"{archive}: node {manifest.node}, made {manifest.to_json()['created_at']} by "
                f"version {manifest.version}, {len(manifest.members)} files, enquiry log up "
                f"to row {manifest.log_seq}"
                + (
                    ""
                    if manifest.trail is None
                    else f", admin audit trail up to entry {manifest.trail[0]}"
                )
            )
            click.echo(
                f"signature: {'good' if checked.archive_key else 'BAD'} with the key in the "
                f"archive ({manifest.kid})"
            )
            if node is None:
                click.echo(f"  (no node config at {config_path}: not checked with a node's key)")
            else:
                verdict = "good" if checked.node_key else "BAD"
                click.echo(f"           {verdict} with the keys node {node.node} publishes")
        for problem in checked.problems:
            click.echo(f"PROBLEM: {problem}")
        if checked.ok:
            click.echo("OK: every file is as the manifest says")
    if not checked.ok:
        raise SystemExit(1)


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A new or empty directory for the config, keys, peers and policies.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A new or empty directory for the databases and the node's state (default: --to).",
)
@click.option(
    "--records-url",
    default=None,
    help="An empty PostgreSQL database to restore a dump of the records into.",
)
@click.option(
    "--enquiries-url",
    default=None,
    help="An empty PostgreSQL database to restore a dump of the enquiry log into.",
)
@handles_errors
def backup_restore(
    archive: Path,
    to: Path,
    state_dir: Path | None,
    records_url: str | None,
    enquiries_url: str | None,
) -> None:
    """Restore an archive into new directories, once it verifies with the key in it; writes
    a connector.yaml naming the restored files. Never overwrites: a directory that is not
    empty is refused."""
    from connector.node.backup import restore_backup
    from connector.storage.urls import redacted

    restored = restore_backup(
        archive,
        to=to,
        state_dir=state_dir,
        records_url=records_url,
        enquiries_url=enquiries_url,
    )
    manifest = restored.manifest
    # Into the restored node's trail, after the archive's own entries: the restored node
    # says where it came from and who made it.
    record_change(
        load_settings(restored.config),
        Action.BACKUP_RESTORED,
        str(archive.resolve()),
        node=manifest.node,
        backed_up_at=manifest.to_json()["created_at"],
        version=manifest.version,
        enquiry_log_seq=manifest.log_seq,
        trail_seq=None if manifest.trail is None else manifest.trail[0],
    )
    click.echo(
        f"restored node {manifest.node} as of {manifest.to_json()['created_at']} "
        f"(enquiry log up to row {manifest.log_seq})"
    )
    click.echo(f"config: {restored.config}")
    for name, url in restored.databases:
        click.echo(f"{name}: {redacted(url)}")
    click.echo(
        f"check it: ncb-connector enquiries verify --config {restored.config} --expect "
        f"{manifest.log_seq}:{manifest.log_hash}  (docs/operations.md §12: what comes next)"
    )
    if manifest.trail is not None:
        click.echo(
            f"and its admin audit trail: ncb-connector audit verify --config {restored.config} "
            f"--expect {manifest.trail[0]}:{manifest.trail[1]}"
        )
