"""A node backed up into one archive signed by its key; the archive checked; restored elsewhere."""

# Here, in node, because a backup needs every layer's part: the settings (where each file
# is), storage (copies, the tar), crypto (the manifest's signature), the enquiry log's
# table (its head) and its kept checkpoint (continuity).

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy import Connection, select

from connector import __version__
from connector.crypto.jws import PublicKey, Signer, SigningKey, parse_compact
from connector.enquiries.continuity import STATE_FILE, KeptLog, KeptState
from connector.enquiries.entry import GENESIS, utc_iso
from connector.enquiries.schema import enquiries
from connector.errors import BackupError, ConfigError, ProtocolError
from connector.node.keyring import KeyPaths, in_force
from connector.settings.config import Settings, load_settings
from connector.storage.backup import (
    MANIFEST,
    Found,
    Member,
    Source,
    archive_name,
    archives_of,
    copy_sqlite,
    digest,
    dump_postgres,
    postgres_snapshot,
    read_archive,
    restore_postgres,
    sqlite_connection,
    write_archive,
)
from connector.storage.migrations import Schema, status
from connector.storage.urls import backend, sqlite_file
from connector.trail.entry import TRAIL_FILE
from connector.trail.file import read_trail, trail_head

BACKUP_TYP = "ncb-backup+jwt"
FORMAT = "ncb-connector-backup/1"

# Members, by where they come from: config/ mirrors the config directory as `init` lays it
# out, state/ the files the node writes, db/ the database copies.
CONFIG = "config/connector.yaml"
KEY = "config/keys/node.jwk"
TLS_CERT = "config/tls/cert.pem"
TLS_KEY = "config/tls/key.pem"
# A rotation under way (keys rotate, keys renew-tls): the next key and certificate and the
# record of the rotation, so a node restored mid-rotation signs and presents what it did.
KEY_NEXT = "config/keys/node.next.jwk"
TLS_CERT_NEXT = "config/tls/cert.next.pem"
TLS_KEY_NEXT = "config/tls/key.next.pem"
ROTATION = "config/keys/rotation.json"
PEERS = "config/peers.yaml"
SOURCES = "config/sources.yaml"
POLICIES = "config/policies/"
AGENCIES = "state/agencies.json"
USERS = "state/console-users.json"
KEPT = "state/enquiry-log-state.json"
TRAIL = "state/admin-audit.jsonl"

SECRET = 0o600  # keys, agencies' token hashes, console accounts, databases
PLAIN = 0o644


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseCopy:
    """One of the two databases as the archive holds it."""

    name: str  # "records" or "enquiries"
    backend: str  # "sqlite" or "postgresql"
    member: str | None  # None: the node had not created it yet (a new node)
    revision: str | None  # its schema revision in the copy


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    node: str
    kid: str
    version: str
    created_at: float
    databases: tuple[DatabaseCopy, ...]
    log_seq: int  # the enquiry log's head in the archive's copy of it
    log_hash: str
    members: tuple[Member, ...]
    # The admin audit trail's head in the archive's copy, (seq, hash): the signature vouches
    # for every entry up to it. None: no trail (nothing recorded yet, or an older archive).
    trail: tuple[int, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "node": self.node,
            "kid": self.kid,
            "version": self.version,
            "created_at": utc_iso(self.created_at, timespec="auto"),
            "databases": [
                {"name": d.name, "backend": d.backend, "member": d.member, "revision": d.revision}
                for d in self.databases
            ],
            "enquiry_log": {"seq": self.log_seq, "hash": self.log_hash},
            "admin_audit": (
                None if self.trail is None else {"seq": self.trail[0], "hash": self.trail[1]}
            ),
            "members": [
                {"name": m.name, "size": m.size, "sha256": m.sha256, "mode": f"{m.mode:04o}"}
                for m in self.members
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        try:
            if data["format"] != FORMAT:
                raise BackupError(f"the manifest is of format {data['format']!r}, not {FORMAT}")
            return cls(
                node=str(data["node"]),
                kid=str(data["kid"]),
                version=str(data["version"]),
                created_at=datetime.fromisoformat(data["created_at"]).timestamp(),
                databases=tuple(
                    DatabaseCopy(
                        name=str(d["name"]),
                        backend=str(d["backend"]),
                        member=None if d["member"] is None else str(d["member"]),
                        revision=None if d["revision"] is None else str(d["revision"]),
                    )
                    for d in data["databases"]
                ),
                log_seq=int(data["enquiry_log"]["seq"]),
                log_hash=str(data["enquiry_log"]["hash"]),
                members=tuple(
                    Member(
                        name=str(m["name"]),
                        size=int(m["size"]),
                        sha256=str(m["sha256"]),
                        mode=int(m["mode"], 8),
                    )
                    for m in data["members"]
                ),
                trail=_trail_head(data.get("admin_audit")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError(f"the manifest is not one this version reads ({exc!r})") from exc


def _trail_head(doc: Any) -> tuple[int, str] | None:
    # Archives made before the trail existed have no `admin_audit`: they vouch for none.
    return None if doc is None else (int(doc["seq"]), str(doc["hash"]))


# --- create ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Created:
    path: Path
    size: int
    manifest: Manifest
    removed: tuple[Path, ...]  # older archives of this node, beyond --keep
    seconds: float


def create_backup(
    settings: Settings,
    config_path: Path,
    directory: Path,
    *,
    keep: int | None = None,
    compress: bool = True,
    clock: Callable[[], float] = time.time,
) -> Created:
    """One archive of the node in `directory`; with `keep`, then the oldest of this node's
    archives there beyond `keep` are deleted (only once the new one is whole)."""
    try:
        return _create(settings, config_path, directory, keep=keep, compress=compress, clock=clock)
    except OSError as exc:  # a full disk, a directory the user may not write
        where = exc.filename or directory
        raise BackupError(f"no backup made: {where}: {exc.strerror or exc}") from exc


def _create(
    settings: Settings,
    config_path: Path,
    directory: Path,
    *,
    keep: int | None,
    compress: bool,
    clock: Callable[[], float],
) -> Created:
    started = time.monotonic()
    now = clock()
    # The key the node signs with now: over a rotation, the new one once it is in force.
    signer = Signer(in_force(KeyPaths.of(settings), now).signing)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _staging(directory) as stage:
        sources = _files(settings, config_path, stage)
        databases, head = _databases(settings, stage)
        for member in dict.fromkeys(d.member for d in databases if d.member is not None):
            sources.append(Source(name=member, path=stage / member, mode=SECRET))
        members = []
        for source in sources:
            size, sha = digest(source.path)
            members.append(Member(name=source.name, size=size, sha256=sha, mode=source.mode))
        manifest = Manifest(
            node=settings.node,
            kid=signer.kid,
            version=__version__,
            created_at=now,
            databases=databases,
            log_seq=head[0],
            log_hash=head[1],
            members=tuple(members),
            trail=trail_head((stage / TRAIL).read_bytes()) if (stage / TRAIL).exists() else None,
        )
        token = signer.sign_compact(orjson.dumps(manifest.to_json()), typ=BACKUP_TYP)
        path = _free_name(directory, settings.node, now, compress=compress)
        write_archive(path, token, sources, at=now, compress=compress)
    removed: list[Path] = []
    if keep is not None:
        old = archives_of(directory, settings.node)
        for stale in old[: max(0, len(old) - keep)]:
            if stale == path:
                continue
            try:
                stale.unlink(missing_ok=True)
            except OSError as exc:
                raise BackupError(
                    f"{path} is made, but {stale} could not be removed: {exc.strerror or exc}"
                ) from exc
            removed.append(stale)
    return Created(
        path=path,
        size=path.stat().st_size,
        manifest=manifest,
        removed=tuple(removed),
        seconds=round(time.monotonic() - started, 3),
    )


@contextmanager
def _staging(directory: Path) -> Iterator[Path]:
    # Beside the archives, not in /tmp: database copies can be large (and /tmp may be a
    # small tmpfs); mkdtemp makes it 0700, as the copies of keys and databases need.
    stage = Path(tempfile.mkdtemp(dir=directory, prefix=".ncb-backup-"))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _files(settings: Settings, config_path: Path, stage: Path) -> list[Source]:
    """The config, keys, peers, policies, sources, agencies and kept checkpoint, copied into
    the stage first: what is digested is what goes into the archive, even if an admin edits
    a file meanwhile. The kept checkpoint is copied before the databases, so it never
    names a row the log's copy lacks."""
    keys = KeyPaths.of(settings)
    wanted: list[tuple[str, Path, int, bool]] = [
        (CONFIG, config_path, PLAIN, True),
        (KEY, settings.path(settings.key_file), SECRET, True),
        (TLS_CERT, settings.path(settings.tls.cert), PLAIN, True),
        (TLS_KEY, settings.path(settings.tls.key), SECRET, True),
        (KEY_NEXT, keys.next_key, SECRET, False),
        (TLS_CERT_NEXT, keys.next_cert, PLAIN, False),
        (TLS_KEY_NEXT, keys.next_cert_key, SECRET, False),
        (ROTATION, keys.rotation, PLAIN, False),
        (PEERS, settings.path(settings.peers_file), PLAIN, False),
        (SOURCES, settings.path(settings.sources_file), PLAIN, False),
        (AGENCIES, settings.state_path(settings.federation.agencies_file), SECRET, False),
        (USERS, settings.state_path(settings.console.users_file), SECRET, False),
        (KEPT, settings.state_path(STATE_FILE), SECRET, False),
        (TRAIL, settings.state_path(TRAIL_FILE), SECRET, False),
    ]
    policy_dir = settings.path(settings.policy_dir)
    if policy_dir.is_dir():
        for path in sorted(policy_dir.rglob("*")):
            relative = path.relative_to(policy_dir)
            # Dot files are editors' and atomic_write's temporary files, not policies.
            if path.is_file() and not any(p.startswith(".") for p in relative.parts):
                wanted.append((POLICIES + relative.as_posix(), path, PLAIN, False))
    sources = []
    for name, path, mode, required in wanted:
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if name == TRAIL:
                # Under the trail's lock: a copy never ends in half an entry being appended.
                if not path.exists():
                    continue
                target.write_bytes(read_trail(path))
            else:
                shutil.copyfile(path, target)
        except FileNotFoundError:
            if required:
                raise BackupError(f"cannot back up {path}: no such file") from None
            continue
        except OSError as exc:
            raise BackupError(f"cannot back up {path}: {exc.strerror or exc}") from exc
        sources.append(Source(name=name, path=target, mode=mode))
    return sources


def _databases(settings: Settings, stage: Path) -> tuple[tuple[DatabaseCopy, ...], tuple[int, str]]:
    """Both databases copied into the stage (records first, the log last), each copy's schema
    revision and the log's head read from the copy itself: the manifest describes what is in
    the archive, not the live database a moment later."""
    wanted = (
        (Schema.RECORDS, settings.records_url),
        (Schema.ENQUIRIES, settings.enquiries_url),
    )
    copies: list[DatabaseCopy] = []
    head = (0, GENESIS)
    copied: dict[str, str] = {}  # URL → member: both schemas may share one database
    (stage / "db").mkdir(exist_ok=True)
    for schema, url in wanted:
        kind = backend(url)
        member = copied.get(url, f"db/{schema.value}.{'sqlite' if kind == 'sqlite' else 'pgdump'}")
        if kind == "sqlite":
            file = sqlite_file(url)
            if file is None or not file.exists():
                copies.append(
                    DatabaseCopy(name=schema.value, backend=kind, member=None, revision=None)
                )
                continue
            if url not in copied:
                copy_sqlite(file, stage / member)
            with sqlite_connection(stage / member) as conn:
                revision, found = _describe(conn, schema)
        else:
            with postgres_snapshot(url) as (conn, snapshot):
                if url not in copied:
                    dump_postgres(url, stage / member, snapshot=snapshot)
                revision, found = _describe(conn, schema)
        copied[url] = member
        if found is not None:
            head = found
        copies.append(
            DatabaseCopy(name=schema.value, backend=kind, member=member, revision=revision)
        )
    return tuple(copies), head


def _describe(conn: Connection, schema: Schema) -> tuple[str | None, tuple[int, str] | None]:
    """A copy's schema revision and, for the log, its head."""
    found = status(schema, conn)
    if schema is not Schema.ENQUIRIES:
        return found.current, None
    if found.empty:
        return found.current, (0, GENESIS)
    row = conn.execute(
        select(enquiries.c.seq, enquiries.c.hash).order_by(enquiries.c.seq.desc()).limit(1)
    ).first()
    return found.current, ((row.seq, row.hash) if row else (0, GENESIS))


# --- verify ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeKey:
    """The keys of the node `verify` runs on: every key it publishes now (over a rotation,
    the old one and the new)."""

    node: str
    keys: tuple[PublicKey, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    path: Path
    manifest: Manifest | None  # None when there is no readable manifest
    archive_key: bool  # signed by the key in the archive, the manifest's kid
    node_key: bool | None  # signed by this node's current key; None when not run on a node
    problems: tuple[str, ...]
    found: dict[str, Found]

    @property
    def ok(self) -> bool:
        return not self.problems


def node_key(config_path: Path) -> NodeKey | None:
    """The current key of the node whose config is at `config_path`; None when there is no
    node there (verify then checks with the key in the archive only)."""
    if not config_path.exists():
        return None
    settings = load_settings(config_path)
    return NodeKey(
        node=settings.node, keys=in_force(KeyPaths.of(settings), time.time()).public_keys
    )


def verify_backup(path: Path, *, node: NodeKey | None) -> Verified:
    """Every member against the manifest (size, SHA-256; none missing, none added), and the
    manifest's signature with the key in the archive and, given `node`, its current key."""
    try:
        token, found = read_archive(path, keep=(KEY, KEY_NEXT, CONFIG))
    except BackupError as exc:
        if not path.exists():
            raise
        return Verified(
            path=path,
            manifest=None,
            archive_key=False,
            node_key=None if node is None else False,
            problems=(exc.detail,),
            found={},
        )
    problems: list[str] = []
    manifest: Manifest | None = None
    try:
        jws = parse_compact(token)
        if jws.typ != BACKUP_TYP:
            raise BackupError(f"the manifest is a {jws.typ!r} token, not {BACKUP_TYP}")
        manifest = Manifest.from_json(orjson.loads(jws.payload))
    except (ProtocolError, BackupError, orjson.JSONDecodeError) as exc:
        detail = exc.detail if isinstance(exc, ProtocolError | BackupError) else str(exc)
        problems.append(f"{MANIFEST} is unreadable: {detail}")
        return Verified(
            path=path,
            manifest=None,
            archive_key=False,
            node_key=None if node is None else False,
            problems=tuple(problems),
            found=found,
        )
    archive_key = False
    key = found.get(KEY)
    if key is None or key.data is None:
        problems.append(f"the archive holds no signing key ({KEY})")
    else:
        # Signed with the key in force when it was made: over a rotation, the next one.
        held = [m for m in (key, found.get(KEY_NEXT)) if m is not None and m.data is not None]
        try:
            publics = [SigningKey.from_jwk(orjson.loads(m.data or b"")).public for m in held]
        except (ValueError, orjson.JSONDecodeError):
            problems.append(f"{KEY} or {KEY_NEXT} is not an Ed25519 JWK")
        else:
            archive_key = any(
                public.verify(jws.signing_input, jws.signature)
                and public.kid == manifest.kid == jws.kid
                for public in publics
            )
            if not archive_key:
                problems.append(
                    "the manifest is not signed by the key in the archive: it was made or "
                    "changed by someone else"
                )
    node_ok: bool | None = None
    if node is not None:
        node_ok = node.node == manifest.node and any(
            key.verify(jws.signing_input, jws.signature) for key in node.keys
        )
        if node.node != manifest.node:
            problems.append(f"the archive is node {manifest.node}'s, this node is {node.node}")
        elif not node_ok:
            kids = ", ".join(k.kid for k in node.keys)
            problems.append(f"the manifest is not signed by a key this node publishes ({kids})")
    listed = {m.name for m in manifest.members}
    for member in manifest.members:
        got = found.get(member.name)
        if got is None:
            problems.append(f"{member.name} is missing")
        elif (got.size, got.sha256) != (member.size, member.sha256):
            problems.append(
                f"{member.name} is not as the manifest says (SHA-256 {got.sha256[:16]}…, "
                f"{got.size} bytes; signed: {member.sha256[:16]}…, {member.size} bytes)"
            )
    problems += [f"{name} is not in the manifest" for name in sorted(set(found) - listed)]
    return Verified(
        path=path,
        manifest=manifest,
        archive_key=archive_key,
        node_key=node_ok,
        problems=tuple(problems),
        found=found,
    )


# --- restore --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Restored:
    config: Path
    state_dir: Path
    manifest: Manifest
    databases: tuple[tuple[str, str], ...]  # (name, URL) as the restored config names them


def restore_backup(
    path: Path,
    *,
    to: Path,
    state_dir: Path | None = None,
    records_url: str | None = None,
    enquiries_url: str | None = None,
) -> Restored:
    """The archive, once verified with the key in it, into new directories: the config files
    into `to` (as `init` lays them out), the SQLite databases and the state files into
    `state_dir` (default: `to`), a PostgreSQL dump into the empty database given. The
    restored connector.yaml names these places; the kept checkpoint is the archive's log head.
    Nothing existing is ever overwritten: a directory that is not empty is refused."""
    try:
        return _restore(
            path,
            to=to,
            state_dir=state_dir,
            records_url=records_url,
            enquiries_url=enquiries_url,
        )
    except OSError as exc:
        raise BackupError(
            f"restore stopped: {exc.filename or to}: {exc.strerror or exc}; remove what it "
            "wrote before trying again"
        ) from exc


def _restore(
    path: Path,
    *,
    to: Path,
    state_dir: Path | None,
    records_url: str | None,
    enquiries_url: str | None,
) -> Restored:
    checked = verify_backup(path, node=None)
    if not checked.ok or checked.manifest is None:
        raise BackupError(
            f"{path} is not restored: {checked.problems[0]} (see `ncb-connector backup verify`)"
        )
    manifest = checked.manifest
    _only_known_members(manifest)
    to = to.resolve()
    state = (state_dir or to).resolve()
    for directory in dict.fromkeys((to, state)):
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise BackupError(f"{directory} is not empty; a restore goes into a new directory")
    urls = _target_urls(manifest, state, records_url=records_url, enquiries_url=enquiries_url)

    to.mkdir(mode=0o750, parents=True, exist_ok=True)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = to / "connector.yaml"
    config_member = checked.found[CONFIG].data
    assert config_member is not None  # verified: it is listed, and kept
    _write_config(config, config_member, urls, path=path, manifest=manifest)
    settings = load_settings(config)

    # Where each member goes; dumps into a private scratch directory, restored, removed.
    scratch = Path(tempfile.mkdtemp(dir=state, prefix=".ncb-restore-"))
    into: dict[str, Path] = {
        KEY: settings.path(settings.key_file),
        TLS_CERT: settings.path(settings.tls.cert),
        TLS_KEY: settings.path(settings.tls.key),
        KEY_NEXT: KeyPaths.of(settings).next_key,
        TLS_CERT_NEXT: KeyPaths.of(settings).next_cert,
        TLS_KEY_NEXT: KeyPaths.of(settings).next_cert_key,
        ROTATION: KeyPaths.of(settings).rotation,
        PEERS: settings.path(settings.peers_file),
        SOURCES: settings.path(settings.sources_file),
        AGENCIES: settings.state_path(settings.federation.agencies_file),
        USERS: settings.state_path(settings.console.users_file),
        KEPT: settings.state_path(STATE_FILE),
        TRAIL: settings.state_path(TRAIL_FILE),
    }
    for member in manifest.members:
        if member.name.startswith(POLICIES):
            into[member.name] = settings.path(settings.policy_dir) / member.name[len(POLICIES) :]
    for copy in manifest.databases:
        if copy.member is None or copy.member in into:
            continue
        file = sqlite_file(urls[copy.name])
        into[copy.member] = file if file is not None else scratch / Path(copy.member).name
    try:
        _, found = read_archive(path, into=into)
        modes = {m.name: m for m in manifest.members}
        for name, target in into.items():
            if name not in modes:
                continue
            member = modes[name]
            if (found[name].size, found[name].sha256) != (member.size, member.sha256):
                raise BackupError(
                    f"{name} changed while it was restored: {to} and {state} are incomplete; "
                    "remove them and restore again"
                )
            target.chmod(member.mode)
        restored_pg: set[str] = set()
        for copy in manifest.databases:
            member_name = copy.member
            if copy.backend == "postgresql" and member_name and member_name not in restored_pg:
                restore_postgres(into[member_name], urls[copy.name])
                restored_pg.add(member_name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _keep_checkpoint(settings, manifest)
    return Restored(
        config=config,
        state_dir=state,
        manifest=manifest,
        databases=tuple((d.name, urls[d.name]) for d in manifest.databases),
    )


_KNOWN = {
    CONFIG,
    KEY,
    TLS_CERT,
    TLS_KEY,
    KEY_NEXT,
    TLS_CERT_NEXT,
    TLS_KEY_NEXT,
    ROTATION,
    PEERS,
    SOURCES,
    AGENCIES,
    USERS,
    KEPT,
    TRAIL,
}
_DATABASE_MEMBER = re.compile(r"^db/(records|enquiries)\.(sqlite|pgdump)$")


def _only_known_members(manifest: Manifest) -> None:
    """A restore writes only where it chooses: a member is one of the names this module
    writes, a policy file under config/policies/ (no `..`, no dot file), or a database copy.
    An archive signed by its own key may still come from anyone (see `verify`)."""
    databases = {d.member for d in manifest.databases if d.member is not None}
    if CONFIG not in {m.name for m in manifest.members}:
        raise BackupError(f"the archive holds no {CONFIG}: nothing to restore a node from")
    for member in manifest.members:
        name = member.name
        if name in _KNOWN or _policy_file(name):
            continue
        if name in databases and _DATABASE_MEMBER.match(name):
            continue
        raise BackupError(f"the archive holds {name!r}, which no backup writes; not restored")


def _policy_file(name: str) -> bool:
    if not name.startswith(POLICIES):
        return False
    parts = name[len(POLICIES) :].split("/")
    return all(part and not part.startswith(".") and "\\" not in part for part in parts)


def _target_urls(
    manifest: Manifest, state: Path, *, records_url: str | None, enquiries_url: str | None
) -> dict[str, str]:
    given = {"records": records_url, "enquiries": enquiries_url}
    members = {d.name: d.member for d in manifest.databases}
    urls: dict[str, str] = {}
    for copy in manifest.databases:
        url = given.get(copy.name)
        option = f"--{copy.name}-url"
        if copy.backend == "sqlite":
            shared = copy.name == "enquiries" and members["records"] == copy.member
            if shared and copy.member is not None:
                urls[copy.name] = urls["records"]  # one file held both: it stays one
                continue
            if url is not None:
                raise BackupError(
                    f"the archive holds {copy.name} as a SQLite file: it is restored into the "
                    f"state directory, {option} is for a PostgreSQL dump"
                )
            urls[copy.name] = f"sqlite:///{state / (copy.name + '.db')}"
            continue
        if copy.name == "enquiries" and members["records"] == copy.member:
            # Both were in one PostgreSQL database: one dump, restored once, into one.
            if url is not None and url != urls.get("records"):
                raise BackupError(
                    "the archive holds records and the enquiry log as one PostgreSQL dump: "
                    "give --records-url alone (or the same URL twice)"
                )
            url = urls.get("records")
        if url is None or backend(url) != "postgresql":
            raise BackupError(
                f"the archive holds {copy.name} as a PostgreSQL dump: give {option} "
                "postgresql://USER@HOST/DB, an empty database to restore it into"
            )
        urls[copy.name] = url
    return urls


def _write_config(
    config: Path, original: bytes, urls: dict[str, str], *, path: Path, manifest: Manifest
) -> None:
    """The archived connector.yaml with every path it names pointing into the target: files
    beside it as `init` lays them out, the databases where they were restored."""
    try:
        data = yaml.safe_load(original)
    except yaml.YAMLError as exc:
        raise BackupError(f"the archived {CONFIG} is not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BackupError(f"the archived {CONFIG} is not a mapping")
    data["key_file"] = "keys/node.jwk"
    data["tls"] = {"cert": "tls/cert.pem", "key": "tls/key.pem"}
    data["peers_file"] = "peers.yaml"
    data["policy_dir"] = "policies"
    data["sources_file"] = "sources.yaml"
    databases = dict(data.get("databases") or {})
    databases.update(urls)
    data["databases"] = databases
    # The node's own files go to their defaults, in the state directory.
    for section, keys in (
        ("federation", ("agencies_file", "health_file")),
        ("discovery", ("discovered_file",)),
        ("console", ("users_file",)),
    ):
        if isinstance(data.get(section), dict):
            for key in keys:
                data[section].pop(key, None)
    header = (
        f"# Restored by `ncb-connector backup restore` from {path.name}: node {manifest.node}, "
        f"backed up {utc_iso(manifest.created_at, timespec='auto')}\n"
        f"# by version {manifest.version}. The file as "
        f"it was is {CONFIG} in that archive.\n"
    )
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        with config.open("x", encoding="utf-8") as fh:
            fh.write(header + body)
    except FileExistsError as exc:
        raise BackupError(f"{config} already exists; not replaced") from exc


def _keep_checkpoint(settings: Settings, manifest: Manifest) -> None:
    """The kept checkpoint becomes the head of the restored log, so the restored node starts
    on it without `--new-log`; the admins' earlier `--new-log` decisions are kept."""
    kept_log = KeptLog(settings.state_path(STATE_FILE), node=manifest.node)
    try:
        old = kept_log.read()
    except ConfigError:
        old = None
    if old is None and manifest.log_seq == 0:
        return
    kept_log.write(
        KeptState(
            node=manifest.node,
            seq=manifest.log_seq,
            hash=manifest.log_hash,
            at=manifest.created_at,
            new_logs=old.new_logs if old is not None else (),
        )
    )


def _free_name(directory: Path, node: str, now: float, *, compress: bool) -> Path:
    """The first name of this second not taken: two backups in one second (the timer's and
    an admin's) are both kept; write_archive still refuses to replace a file that appears
    meanwhile."""
    for n in range(1, 10_000):
        path = directory / archive_name(node, now, compress=compress, n=n)
        if not path.exists():
            return path
    raise BackupError(f"{directory} holds 9,999 archives of this second already")
