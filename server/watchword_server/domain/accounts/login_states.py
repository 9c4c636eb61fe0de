"""The refusals a correct password gets when the account may not log in.

Told only after a correct password (or second factor), so they reveal nothing to a guesser.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchword_server.model.errors import (
    AccountBlocked,
    AccountDisabled,
    AccountPendingApproval,
    AccountPendingVerification,
    DomainError,
)
from watchword_server.model.records import UserStatus

__all__ = ["STATE_ERRORS"]

STATE_ERRORS: Mapping[UserStatus, type[DomainError]] = {
    UserStatus.PENDING_VERIFICATION: AccountPendingVerification,
    UserStatus.PENDING_APPROVAL: AccountPendingApproval,
    UserStatus.DISABLED: AccountDisabled,
    UserStatus.BLOCKED: AccountBlocked,
}
