"""The offline list of common and breached passwords shipped with the package (see
``data/README.md`` for its source, size and licence), loaded once per process."""

from __future__ import annotations

import functools
import gzip
import unicodedata
from importlib import resources

__all__ = ["fold", "is_common"]

_LIST = "data/common-passwords.txt.gz"


def fold(text: str) -> str:
    """``text`` as passwords are compared here: NFC, case folded."""
    return unicodedata.normalize("NFC", text).casefold()


@functools.cache
def _common() -> frozenset[str]:
    packed = resources.files(__package__).joinpath(_LIST).read_bytes()
    return frozenset(fold(line) for line in gzip.decompress(packed).decode().splitlines())


def is_common(password: str) -> bool:
    """Whether ``password`` (in any case) is on the list."""
    return fold(password) in _common()


def load() -> int:
    """Load the list now (a first check would otherwise wait ~0.1 s for it); its size."""
    return len(_common())
