"""The application's hooks: callables run before a registration, a login and a password
change, which may refuse it with a message (the auth module's callbacks, but before).

A hook gets what the flow knows of the request (never a password: a hook that logged its
argument would write it out) and returns to let the flow go on, or raises ``Refused``.
A hook that raises anything else fails the call with nothing done, logged here with its
traceback; the caller is told only that it may retry (UNAVAILABLE). Failing open would
let a broken policy check wave everyone through.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from watchword_server.model.errors import HookFailed, HookRefused
from watchword_server.model.records import UserRecord

__all__ = [
    "Hook",
    "Hooks",
    "LoginAttempt",
    "PasswordChangeAttempt",
    "RegisterAttempt",
    "Refused",
    "run_hook",
]

_log = logging.getLogger(__name__)

Attempt = TypeVar("Attempt")
Hook = Callable[[Attempt], Awaitable[None] | None]
"""A hook: a plain function or a coroutine function of one attempt."""


class Refused(Exception):  # noqa: N818 - what a hook says, as in ``raise Refused(...)``
    """Raised by a hook to refuse the flow.

    The caller gets FAILED_PRECONDITION with ``message`` (status message and
    LocalizedMessage) and an ErrorInfo of ``reason`` in ``domain``.

    Args:
        message: The end user's text.
        reason: A short UPPER_SNAKE_CASE code the application's clients can match.
        domain: The ErrorInfo domain, the application's (never ``watchword.auth.v1``).
    """

    def __init__(
        self, message: str, *, reason: str = "REFUSED", domain: str = "application"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.domain = domain


@dataclass(frozen=True)
class RegisterAttempt:
    """A registration about to be made: its fields are valid, no account exists yet, and
    nothing tells whether the address is taken."""

    email: str
    first_name: str
    last_name: str
    extra: dict[str, Any]
    client_ip: str


@dataclass(frozen=True)
class LoginAttempt:
    """A login with the right password, by an account whose state allows it, before its
    session (or second-factor challenge) is made."""

    user: UserRecord
    remember: bool
    client_ip: str


@dataclass(frozen=True)
class PasswordChangeAttempt:
    """A password about to change: ``change`` (ChangePassword, the old password checked)
    or ``reset`` (ResetPassword, the mailed key valid)."""

    user: UserRecord
    kind: Literal["change", "reset"]
    client_ip: str


def _allow(_attempt: object) -> None:
    return None


@dataclass(frozen=True)
class Hooks:
    """The application's hooks; each defaults to allowing everything.

    Attributes:
        before_register: Runs before Register creates an account (after its fields are
            checked, before the address is looked up or the password hashed).
        before_login: Runs before Authenticate logs in, after the password was found right
            and the account's state allows a login, as the account-state refusals are: a
            refusal tells a caller that the password was right.
        before_password_change: Runs before ChangePassword (after the old password is
            checked) and ResetPassword (after the key is found valid) set the new one.
    """

    before_register: Hook[RegisterAttempt] = field(default=_allow)
    before_login: Hook[LoginAttempt] = field(default=_allow)
    before_password_change: Hook[PasswordChangeAttempt] = field(default=_allow)


async def run_hook(name: str, hook: Hook[Attempt], attempt: Attempt) -> None:
    """Run ``hook`` on ``attempt``.

    Raises:
        HookRefused: the hook refused.
        HookFailed: the hook raised anything else (logged here, with its traceback).
    """
    try:
        result = hook(attempt)
        if inspect.isawaitable(result):
            await result
    except Refused as refusal:
        raise HookRefused(
            refusal.message, reason=refusal.reason, domain=refusal.domain, hook=name
        ) from None
    except Exception as error:  # noqa: BLE001 - the application's code: anything may fail
        _log.error("the %s hook failed", name, exc_info=error)
        raise HookFailed(name) from None
