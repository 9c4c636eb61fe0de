"""The ``watchword`` subcommands that need more than a few lines; ``cli.py`` dispatches."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""
