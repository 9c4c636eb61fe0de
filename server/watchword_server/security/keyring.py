"""The server's secret keys (the pepper and its retired predecessors), by id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["KeyRing"]


@dataclass(frozen=True)
class KeyRing:
    """The current key's id and every key still accepted, current one included."""

    current_id: str
    keys: Mapping[str, bytes]

    @property
    def current(self) -> bytes:
        """The key new secrets are made with."""
        return self.keys[self.current_id]

    def retired(self) -> dict[str, bytes]:
        """The keys that only verify old secrets."""
        return {key_id: key for key_id, key in self.keys.items() if key_id != self.current_id}
