"""``watchword keys create|list|revoke``: the service keys of calling services."""

from __future__ import annotations

import argparse
import asyncio

from watchword_server.commands import CommandError
from watchword_server.commands.domain import open_domain
from watchword_server.config import Settings
from watchword_server.domain.access.service_keys import KeyNameTaken, KeyNotFound
from watchword_server.model.records import Scope

__all__ = ["run"]


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Run ``keys COMMAND``; returns the exit status.

    Raises:
        CommandError: the name is taken (create) or unknown (revoke).
    """
    asyncio.run(_keys(settings, arguments))
    return 0


async def _keys(settings: Settings, arguments: argparse.Namespace) -> None:
    async with open_domain(settings) as domain:
        keys = domain.service_keys
        if arguments.keys_command == "create":
            subject = arguments.client_subject
            try:
                secret = await keys.create(
                    arguments.name, Scope(arguments.scope), client_subject=subject
                )
            except KeyNameTaken:
                raise CommandError(f"a key named {arguments.name!r} exists already") from None
            bound = "" if subject is None else f" for client certificate {subject!r}"
            print(
                f"created {arguments.scope} key {arguments.name!r}{bound}; its secret, shown once:"
            )
            print(secret)
        elif arguments.keys_command == "list":
            for key in await keys.list():
                used = key.last_used_time.isoformat() if key.last_used_time else "never"
                bound = "" if key.client_subject is None else f"\tclient {key.client_subject}"
                print(
                    f"{key.name}\t{key.scope}\tcreated {key.create_time.isoformat()}"
                    f"\tlast used {used}{bound}"
                )
        else:
            try:
                await keys.revoke(arguments.name)
            except KeyNotFound:
                raise CommandError(f"no key is named {arguments.name!r}") from None
            print(f"revoked key {arguments.name!r}")
