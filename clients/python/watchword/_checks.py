"""The checks of ``batch_check`` and their results, shared by both clients.

A batch is one AccessService.BatchCheck call: up to :data:`MAX_BATCH_CHECKS` membership and
permission checks, each with its own subject, answered in order. A check that cannot be
answered (an invalid session, bad input, an unknown user) gets its own error in its result,
decoded like a failed call's; the others still get their answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Final, TypeAlias

from watchword._base import membership_request, one_subject, permission_request
from watchword.auth.v1 import access_service_pb2 as access
from watchword.errors import Unknown, WatchwordError, from_status

__all__ = [
    "MAX_BATCH_CHECKS",
    "AnyCheck",
    "CheckResult",
    "MembershipCheck",
    "PermissionCheck",
    "batch_request",
    "results_of",
]

MAX_BATCH_CHECKS: Final = 100
"""The most checks one ``batch_check`` may carry (the server's limit too)."""


@dataclass(frozen=True, slots=True)
class MembershipCheck:
    """Whether a user belongs to ``group`` (HasMembership), as one check of a batch.

    Give exactly one subject: ``user_id`` or ``session_token``.

    Attributes:
        group: The group's name.
        user_id: The user, by id.
        session_token: The user, by a session (left out of ``repr``: it is a credential).
        min_revision: ``None``: the client's default (see ``read_your_writes``); ``""``:
            any cached answer will do; a revision from a write: an answer at least as new.

    Raises:
        ValueError: Not exactly one subject was given.
    """

    group: str
    _: KW_ONLY
    user_id: str | None = None
    session_token: str | None = field(default=None, repr=False)
    min_revision: str | None = None

    def __post_init__(self) -> None:
        one_subject(user_id=self.user_id, session_token=self.session_token)


@dataclass(frozen=True, slots=True)
class PermissionCheck:
    """Whether a subject holds a permission (HasPermission), as one check of a batch.

    Give exactly one subject: ``user_id``, ``session_token`` or ``group`` (the group's own
    grants).

    Attributes:
        name: The permission's name, e.g. ``"write"``.
        table_name: The table it is checked on; ``""`` for none.
        record_id: The record it is checked on; ``""`` for none.
        user_id: The user, by id.
        session_token: The user, by a session (left out of ``repr``: it is a credential).
        group: A group, for its own grants.
        min_revision: As for :class:`MembershipCheck`.

    Raises:
        ValueError: Not exactly one subject was given.
    """

    name: str
    table_name: str = ""
    record_id: str = ""
    _: KW_ONLY
    user_id: str | None = None
    session_token: str | None = field(default=None, repr=False)
    group: str | None = None
    min_revision: str | None = None

    def __post_init__(self) -> None:
        one_subject(user_id=self.user_id, session_token=self.session_token, group=self.group)


AnyCheck: TypeAlias = MembershipCheck | PermissionCheck
"""One check of a batch."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer to one check of a batch.

    Attributes:
        allowed: For a membership, whether the user is a member; for a permission, whether
            a grant matches. Always False when ``error`` is set.
        error: Why this check has no answer, as the exception the single call would have
            raised (e.g. :class:`watchword.Unauthenticated` with reason
            ``SESSION_INVALID``); ``None`` when it has one.
        revision: The state the answer reflects (opaque; may be passed as ``min_revision``).

    A result has no truth value (``if result:`` raises TypeError): read ``allowed``, and
    ``error`` to tell "no" from "no answer".
    """

    allowed: bool
    error: WatchwordError | None = None
    revision: str = ""

    def __bool__(self) -> bool:
        raise TypeError(
            "a CheckResult is not a bool: read result.allowed (and result.error, set when "
            "the check has no answer)"
        )


def batch_request(
    checks: Sequence[AnyCheck], min_revision: Callable[[str | None], str]
) -> access.BatchCheckRequest:
    """The BatchCheck request for ``checks``; ``min_revision`` gives what each one sends.

    Raises:
        ValueError: More than :data:`MAX_BATCH_CHECKS` checks.
        TypeError: An item that is not a MembershipCheck or a PermissionCheck.
    """
    if len(checks) > MAX_BATCH_CHECKS:
        raise ValueError(
            f"batch_check takes at most {MAX_BATCH_CHECKS} checks, got {len(checks)}: "
            "split them into several batches"
        )
    request = access.BatchCheckRequest()
    for check in checks:
        if isinstance(check, MembershipCheck):
            request.checks.add(
                membership=membership_request(
                    group=check.group,
                    user_id=check.user_id,
                    session_token=check.session_token,
                    min_revision=min_revision(check.min_revision),
                )
            )
        elif isinstance(check, PermissionCheck):
            request.checks.add(
                permission=permission_request(
                    name=check.name,
                    table_name=check.table_name,
                    record_id=check.record_id,
                    user_id=check.user_id,
                    session_token=check.session_token,
                    group=check.group,
                    min_revision=min_revision(check.min_revision),
                )
            )
        else:
            raise TypeError(
                f"batch_check takes MembershipCheck and PermissionCheck items, not {check!r}"
            )
    return request


def _result(result: access.CheckResult) -> CheckResult:
    if result.HasField("error"):
        return CheckResult(allowed=False, error=from_status(result.error), revision=result.revision)
    return CheckResult(allowed=result.allowed, revision=result.revision)


def results_of(response: access.BatchCheckResponse, expected: int) -> list[CheckResult]:
    """The results of a BatchCheck response, in the order of its checks.

    Raises:
        Unknown: The server answered another number of results than checks were sent, so
            no result can be trusted to be the answer to its check.
    """
    if len(response.results) != expected:
        raise Unknown(f"BatchCheck answered {len(response.results)} results for {expected} checks")
    return [_result(result) for result in response.results]
