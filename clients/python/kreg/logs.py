"""How kreg's processes log: text for people, or one JSON object per line for a log pipeline,
with the request id of the RPC being served (or made) when there is one.

The id travels as the `x-request-id` metadata of each call: the client makes one per call
(kept across its retries), the registry logs and audits under it (and makes one for a call
without, when it has something to write about it), so a caller's failure and the server's
log line name the same request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
import sys
from datetime import datetime, timezone

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 64  # a caller's id longer than this is not taken as is
FORMATS = ("text", "json")

# The id of the request this task or thread is serving; "" outside one.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("kreg_request_id", default="")


def new_request_id() -> str:
    return secrets.token_hex(8)


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """{"ts", "level", "logger", "message", "request_id"?, "exception"?} per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", ""):
            entry["request_id"] = record.request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", "")
        return f"{text} [request {rid}]" if rid else text


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Set up the root logger of a kreg process (the CLI's `--log-format`)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: want one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_WithRequestId())
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
