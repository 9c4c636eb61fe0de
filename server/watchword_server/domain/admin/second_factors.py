"""Second factors as an administrator sees them: which a user has, and removing them all
(a lost phone and no recovery code left), so that the password alone logs in again."""

from __future__ import annotations

from dataclasses import dataclass

from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.lookups import existing_user
from watchword_server.model.records import CallContext, EventKind, SecondFactorMethod, UserRecord
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import passkeys as passkey_rows
from watchword_server.storage.repositories import second_factors as factor_rows

__all__ = ["SecondFactorAdmin", "SecondFactorSummary"]


@dataclass(frozen=True)
class SecondFactorSummary:
    """The second factors a user can log in with, and how many passkeys the user has."""

    methods: tuple[SecondFactorMethod, ...]
    passkey_count: int


class SecondFactorAdmin:
    """GetSecondFactors and ResetSecondFactors."""

    def __init__(self, database: Database, events: EventLog) -> None:
        self._database = database
        self._events = events

    async def get(self, user_id: str) -> SecondFactorSummary:
        """The user's confirmed second factors (an unconfirmed TOTP is none yet) and
        passkeys (a passkey login is both factors at once)."""
        async with self._database.connect() as conn:
            user = await existing_user(conn, user_id)
            totp = await factor_rows.get_totp(conn, user.id)
            unused = await factor_rows.unused_recovery_codes(conn, user.id)
            passkeys = await passkey_rows.count_passkeys(conn, user.id)
        methods: list[SecondFactorMethod] = []
        if totp is not None and totp.confirmed:
            methods.append(SecondFactorMethod.TOTP)
            if unused:
                methods.append(SecondFactorMethod.RECOVERY_CODE)
        if passkeys:
            methods.append(SecondFactorMethod.PASSKEY)
        return SecondFactorSummary(tuple(methods), passkey_count=passkeys)

    async def reset(self, user_id: str, call: CallContext) -> UserRecord:
        """Remove the user's TOTP (confirmed or not), recovery codes, pending login
        challenges and passkeys (with their ceremonies under way); writes an event."""

        async def remove(conn: Connection) -> UserRecord:
            user = await existing_user(conn, user_id, lock=True)
            await factor_rows.delete_totp(conn, user.id)
            await factor_rows.delete_challenges_for_user(conn, user.id)
            await passkey_rows.delete_passkeys_of(conn, user.id)
            await self._events.record(conn, EventKind.SECOND_FACTORS_RESET, call, user=user)
            return user

        return await self._database.transaction(remove)
