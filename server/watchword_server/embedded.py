"""The zero-set-up default: an SQLite file, and a pepper generated once and kept beside it."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from watchword_server.storage.db import database_file

__all__ = ["embedded_key_path", "load_or_create_embedded_key"]

_log = logging.getLogger(__name__)


def embedded_key_path(database_url: str) -> Path:
    """Where the embedded default keeps its pepper: ``<database file>.key``."""
    database = database_file(database_url) or "watchword.db"
    return Path(database).with_suffix(".key")


def load_or_create_embedded_key(database_url: str) -> str:
    """Read the embedded pepper, creating it (mode 0600) on first start.

    Losing this file makes every stored password unusable, so it is never overwritten.
    """
    path = embedded_key_path(database_url)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    _log.warning("generated a new password pepper in %s: keep it with the database", path)
    return key
