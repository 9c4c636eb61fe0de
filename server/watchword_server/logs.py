"""How the process logs: ``log_level`` and up, as text or as one JSON object per line.

A JSON line holds ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, the
fields a record carries under ``rpc`` (the access log's: method, code, duration_ms, peer,
request_id, key_id, user_id; see ``transport/rpc_observer.py``) and ``error`` with the
traceback when there is one.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "rpc", None)
        if isinstance(fields, dict):
            line.update((key, value) for key, value in fields.items() if value is not None)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Log to standard error from ``level`` up, as ``text`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
