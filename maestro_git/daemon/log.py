"""The daemon's log: plain lines or one JSON object per line, thread-safe."""

from __future__ import annotations

import json
import sys
import threading
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["DaemonLog"]


class DaemonLog:
    """Plain lines (`2024-05-01T12:00:00.123Z info  message`) or one JSON object per line.

    Every record has an `event` name (`mirrored`, `problem`, `standby`, ...), a level and a
    human message; JSON records carry the structured fields as well. Thread-safe.
    """

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()

    def emit(self, level: str, event: str, message: str, **fields: Any) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.fmt == "json":
            record = {"time": stamp, "level": level, "event": event, "message": message}
            record.update(fields)
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            line = f"{stamp} {level:<7} {message}"
        with self._lock:
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr must not kill the daemon
                pass

    def info(self, event: str, message: str, **fields: Any) -> None:
        self.emit("info", event, message, **fields)

    def warning(self, event: str, message: str, **fields: Any) -> None:
        self.emit("warning", event, message, **fields)

    def error(self, event: str, message: str, **fields: Any) -> None:
        self.emit("error", event, message, **fields)
