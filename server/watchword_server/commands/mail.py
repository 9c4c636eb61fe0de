"""``watchword mail dead|retry``: see and retry mail that was given up."""

from __future__ import annotations

import argparse
import asyncio

from watchword_server.commands import CommandError
from watchword_server.commands.domain import open_domain
from watchword_server.config import Settings

__all__ = ["run"]


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Run ``mail COMMAND``; returns the exit status.

    Raises:
        CommandError: ``retry`` was given neither ids nor ``--all``.
    """
    asyncio.run(_mail(settings, arguments))
    return 0


async def _mail(settings: Settings, arguments: argparse.Namespace) -> None:
    async with open_domain(settings) as domain:
        sender = domain.mail_sender
        if arguments.mail_command == "dead":
            dead = await sender.dead_letters()
            for mail in dead:
                print(
                    f"{mail.id}\t{mail.kind}\t{mail.recipient}\t{mail.attempts} attempts"
                    f"\tgiven up {mail.dead_time.isoformat()}\t{mail.last_error}"
                )
            if not dead:
                print("no mail was given up")
            return
        if not arguments.ids and not arguments.all:
            raise CommandError(
                "name the mails to send again (ids from `watchword mail dead`) or --all"
            )
        revived = await sender.retry(None if arguments.all else arguments.ids)
        print(f"{revived} mail(s) due again; a running server sends them within seconds")
