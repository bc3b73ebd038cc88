"""What differs between two readings of connector.yaml, and which of it a reload can apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from connector.settings.config import Settings

# What a running node takes on SIGHUP. Everything else (listeners, databases, the key and
# certificate, the node id, paths of files the node writes, discovery) is bound when the
# node starts: a change to it is reported as needing a restart, never half-applied.
RELOADABLE: tuple[str, ...] = (
    "notifications",
    "peers_file",
    "policy_dir",
    "policy_reload_interval",
    "logging",
    "matching",
    # Read by `keys rotate` and `keys renew-tls` when they run, never by the running node:
    # an edit is in force for the next command, with nothing for the node to take.
    "keys",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsChanges:
    """Dotted names of the settings that changed, split by what a reload does with them."""

    applied: tuple[str, ...]
    restart: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.applied or self.restart)

    def touches(self, prefix: str) -> bool:
        """Whether a reloadable setting at or under `prefix` changed."""
        return any(_under(name, prefix) for name in self.applied)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _changed(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, BaseModel) and type(old) is type(new):
        names: list[str] = []
        for field in type(old).model_fields:
            path = f"{prefix}.{field}" if prefix else field
            names += _changed(getattr(old, field), getattr(new, field), path)
        return names
    if isinstance(old, dict) and isinstance(new, dict):
        names = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}"
            if key not in old or key not in new:
                names.append(path)
            else:
                names += _changed(old[key], new[key], path)
        return names
    return [] if old == new else [prefix]


def settings_changes(old: Settings, new: Settings) -> SettingsChanges:
    """Compare two validated readings setting by setting (a channel's URL, not the whole
    `notifications` section), so the admin is told exactly what waits for a restart."""
    names = _changed(old, new, "")
    applied = tuple(n for n in names if any(_under(n, r) for r in RELOADABLE))
    restart = tuple(n for n in names if n not in applied)
    return SettingsChanges(applied=applied, restart=restart)
