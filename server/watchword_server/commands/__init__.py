"""One module per ``watchword`` command, each with ``run(settings, arguments)``; ``cli.py``
declares their arguments and imports only the module of the command that runs."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""
