"""The audit log: one JSON line per write RPC — who, what, when, and how it ended.

    {"at": "2026-12-01T22:31:07.412Z", "who": "ops-oncall", "peer": "ipv4:10.0.3.7:51234",
     "method": "RetractKernel", "outcome": "OK", "request_id": "5be0c2d1a9f3e784",
     "artifact_id": "9c1f...", "reason": "wrong results"}

`who` is the token's name from the auth file ("anonymous" without auth). Refused writes
(UNAUTHENTICATED, PERMISSION_DENIED, invalid requests) are recorded too: an attempt to
publish without the right is what an auditor looks for. The file (`audit.jsonl` in the data
directory) is append-only and flushed per line, so a killed server loses no line it
acknowledged; it is not synced to disk per line (a power cut may lose the last few), which
keeps a disk sync off the event loop.
"""

from __future__ import annotations

import datetime
import json
import threading
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from kreg import logs

# Request and reply fields worth a line: ids, keys, the reason given.
_FIELDS = ("job_id", "artifact_id", "lease_id", "reason", "retryable", "force")
_KEYS = ("key", "keys")


class AuditLog:
    FILE_NAME = "audit.jsonl"

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / self.FILE_NAME
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's life
        self._lock = threading.Lock()

    def record(self, *, who: str, peer: str, method: str, outcome: str, request: Any, reply: Any = None) -> None:
        entry: dict[str, Any] = {
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "who": who,
            "peer": peer,
            "method": method,
            "outcome": outcome,
            "request_id": logs.request_id.get(),
        }
        for message in (request, reply):
            if isinstance(message, Message):
                entry.update(_summary(message))
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _summary(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.name in _FIELDS:
            out[field.name] = value
        elif field.name in _KEYS:
            out[field.name] = [_key_text(k) for k in value] if field.name == "keys" else _key_text(value)
        elif field.name in ("artifact", "job") and isinstance(value, Message):
            for inner, inner_value in value.ListFields():
                if inner.name in ("artifact_id", "job_id"):
                    out[inner.name] = inner_value
                elif inner.name == "key":
                    out["key"] = _key_text(inner_value)
    return out


def _key_text(key: Message) -> str:
    from kreg import convert as cv

    try:
        return str(cv.key_from_proto(key))
    except Exception:  # noqa: BLE001 - an invalid key is logged as sent
        return str(key).replace("\n", " ").strip()[:300]
