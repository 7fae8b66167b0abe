"""What the mirror tells the world after each commit: NOTIFY payloads and hooks.

- `notify(conn, events)` sends one `NOTIFY maestro_events` per changed entity, inside the
  caller's transaction, so a listener hears of a change exactly when the row is visible.
  Payload (JSON, always well under PostgreSQL's 8,000-byte limit; keys, never documents):
  `{"action": "updated", "kind": "persona", "key": "acme/reviewer", "commit": "<sha>"}`
  (`"old_key"` is added for renames; on a connection bound to a mirror, `"schema"` and
  `"branch"` name it: one channel serves every mirror, and listeners filter). `action` is an audit action (`created`, `updated`,
  `renamed`, `deleted`, `rolled_back`, `history_rewritten`) or `resolved`: a persona whose
  file did not change but whose resolved content did, because an ancestor changed. A commit
  with more than `NOTIFY_MAX_EVENTS` events sends one `reloaded` notification instead.
- `run_hooks(settings, events)` runs the hooks of `maestro.toml` after the commit is mirrored:
  each shell command once per mirrored commit, with the events as JSON Lines on stdin (one
  object per line, the same objects as the NOTIFY payloads) and `MAESTRO_COMMIT` in its
  environment, under a timeout; each Python hook (`module:function`, or a name registered in
  the entry-point group `maestro_git.hooks`) once per event, with the payload dict. A failing
  or hanging hook is logged and never raised: hooks never block the mirror.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from psycopg import sql

from maestro_git.core.models import AuditEvent
from maestro_git.mirror.db import NOTIFY_CHANNEL, Connection, mirror_of
from maestro_git.settings import Settings

__all__ = [
    "HOOK_GROUP",
    "HOOK_TIMEOUT_SECONDS",
    "NOTIFY_MAX_EVENTS",
    "EntityEvent",
    "load_hook",
    "notify",
    "run_hooks",
]

log = logging.getLogger("maestro_git.mirror.events")

HOOK_GROUP = "maestro_git.hooks"
HOOK_TIMEOUT_SECONDS = 10.0
_MAX_PAYLOAD = 7900
NOTIFY_MAX_EVENTS = 1000  # above this, one `reloaded` notification for the whole commit


@dataclass(frozen=True)
class EntityEvent:
    """One changed entity, as NOTIFY and the hooks see it."""

    action: str
    kind: str
    key: str
    commit: str
    old_key: str | None = None

    @classmethod
    def from_audit(cls, event: AuditEvent) -> EntityEvent:
        return cls(event.action, event.kind, event.key, event.commit, event.old_key)

    def payload(self) -> dict[str, str]:
        out = {"action": self.action, "kind": self.kind, "key": self.key,
               "commit": self.commit}
        if self.old_key is not None:
            out["old_key"] = self.old_key
        return out

    def to_json(self) -> str:
        text = json.dumps(self.payload(), ensure_ascii=False, separators=(",", ":"))
        if len(text.encode("utf-8")) > _MAX_PAYLOAD:  # only a pathological key gets here
            text = json.dumps({"action": self.action, "kind": self.kind,
                               "key": self.key[:1000], "commit": self.commit})
        return text


def _as_entity(event: EntityEvent | AuditEvent) -> EntityEvent:
    return event if isinstance(event, EntityEvent) else EntityEvent.from_audit(event)


def notify(conn: Connection, events: Iterable[EntityEvent | AuditEvent]) -> int:
    """NOTIFY `maestro_events` once per event, in one round trip; returns how many.

    A commit with more than `NOTIFY_MAX_EVENTS` events (a first load, a bulk import) sends
    one `{"action": "reloaded", "kind": "repository", "key": "*", "commit": …, "count": n}`
    instead: a listener reloads what it holds, rather than taking thousands of messages.
    Call it inside the transaction that applies the changes: PostgreSQL delivers the
    notifications when (and only if) that transaction commits.
    """
    found = list(events)
    mirror = mirror_of(conn)
    where = "" if mirror is None else json.dumps(
        {"schema": mirror.schema, "branch": mirror.branch}, ensure_ascii=False,
        separators=(",", ":"))[1:-1]
    if len(found) > NOTIFY_MAX_EVENTS:
        payloads = [json.dumps({"action": "reloaded", "kind": "repository", "key": "*",
                                "commit": found[-1].commit, "count": len(found)},
                               separators=(",", ":"))]
    else:
        payloads = [_as_entity(e).to_json() for e in found]
    if where:  # each payload is a JSON object: add the mirror's fields before its brace
        payloads = [f"{p[:-1]},{where}}}" for p in payloads]
    if payloads:
        conn.execute(sql.SQL("SELECT count(pg_notify({}, p)) FROM unnest(%s::text[]) AS p")
                     .format(sql.Literal(NOTIFY_CHANNEL)), (payloads,))
    return len(payloads)


HookFn = Callable[[dict[str, str]], Any]


def load_hook(spec: str) -> HookFn:
    """A Python hook from `module:function`, or from a name in the `maestro_git.hooks`
    entry-point group. Raises `LookupError`/`ImportError` when it cannot be found."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise LookupError(f"{spec} is not callable")
        return target  # type: ignore[no-any-return]
    for ep in entry_points(group=HOOK_GROUP):
        if ep.name == spec:
            loaded = ep.load()
            if not callable(loaded):
                raise LookupError(f"entry point {spec} is not callable")
            return loaded  # type: ignore[no-any-return]
    raise LookupError(f"no hook named {spec!r} in the entry-point group {HOOK_GROUP}")


def _run_command(command: str, settings: Settings, commit: str, stdin: str,
                 timeout: float) -> bool:
    env = dict(os.environ, MAESTRO_COMMIT=commit, MAESTRO_BRANCH=settings.branch)
    try:
        done = subprocess.run(command, shell=True, input=stdin.encode("utf-8"),
                              cwd=settings.repo_path, env=env, timeout=timeout,
                              capture_output=True, check=False)
    except subprocess.TimeoutExpired:
        log.warning("hook %r timed out after %.0f s (commit %s)", command, timeout, commit[:7])
        return False
    except OSError as exc:
        log.warning("hook %r could not run: %s", command, exc)
        return False
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        log.warning("hook %r exited %d (commit %s)%s", command, done.returncode, commit[:7],
                    f": {err[-1]}" if err else "")
        return False
    return True


def run_hooks(settings: Settings, events: Sequence[EntityEvent | AuditEvent],
              timeout: float = HOOK_TIMEOUT_SECONDS) -> int:
    """Run the configured hooks for one mirrored commit's events; returns how many failed.

    Never raises: a failing hook is logged (logger `maestro_git.mirror.events`) and skipped.
    """
    items = [_as_entity(e) for e in events]
    if not items or not (settings.hook_commands or settings.hook_entry_points):
        return 0
    failures = 0
    by_commit: dict[str, list[EntityEvent]] = {}
    for item in items:
        by_commit.setdefault(item.commit, []).append(item)
    for command in settings.hook_commands:
        for commit, group in by_commit.items():
            stdin = "".join(e.to_json() + "\n" for e in group)
            if not _run_command(command, settings, commit, stdin, timeout):
                failures += 1
    for spec in settings.hook_entry_points:
        try:
            fn = load_hook(spec)
        except Exception as exc:  # a user's hook: any failure is logged, never raised
            log.warning("hook %r cannot be loaded: %s", spec, exc)
            failures += 1
            continue
        for item in items:
            try:
                fn(item.payload())
            except Exception as exc:
                log.warning("hook %r failed on %s %s %s: %s", spec, item.action, item.kind,
                            item.key, exc)
                failures += 1
    return failures
