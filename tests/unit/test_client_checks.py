"""The client's batch checks and revisions on their own (no server): the check types, the
request they make, how results are read, and which ``min_revision`` a check sends."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

import watchword
from tests.support.clock import ManualSeconds
from watchword import CheckResult, MembershipCheck, PermissionCheck
from watchword._base import READ_YOUR_WRITES_WINDOW, Revisions
from watchword._checks import batch_request, results_of
from watchword.auth.v1 import access_service_pb2 as access
from watchword.client import MAX_BATCH_CHECKS, AnyCheck


def test_checks_take_exactly_one_subject_and_hide_session_tokens() -> None:
    assert MembershipCheck("editors", user_id="u1").group == "editors"
    PermissionCheck("write", "Post", "7", group="editors")
    with pytest.raises(ValueError, match="exactly one subject"):
        MembershipCheck("editors")
    with pytest.raises(ValueError, match="exactly one subject"):
        PermissionCheck("write", user_id="u1", session_token="t")
    with pytest.raises(TypeError):
        MembershipCheck("editors", "u1")  # type: ignore[call-arg]  # subjects are keywords
    check = PermissionCheck("write", session_token="secret-token")
    assert "secret-token" not in repr(check)
    assert check == PermissionCheck("write", session_token="secret-token")  # frozen values


def test_a_batch_request_keeps_the_order_and_each_min_revision() -> None:
    checks: list[AnyCheck] = [
        MembershipCheck("editors", session_token="t"),
        PermissionCheck("write", "Post", "7", user_id="u1", min_revision=""),
        PermissionCheck("read", group="editors", min_revision="x42"),
    ]
    request = batch_request(checks, lambda explicit: "x7" if explicit is None else explicit)
    assert [check.WhichOneof("kind") for check in request.checks] == [
        "membership",
        "permission",
        "permission",
    ]
    first, second, third = request.checks
    assert (first.membership.session_token, first.membership.min_revision) == ("t", "x7")
    assert (second.permission.user_id, second.permission.record_id) == ("u1", "7")
    assert second.permission.min_revision == ""  # explicitly none
    assert (third.permission.group, third.permission.min_revision) == ("editors", "x42")


def test_a_batch_is_at_most_100_checks() -> None:
    assert MAX_BATCH_CHECKS == 100
    many = [MembershipCheck(f"g{n}", user_id="u") for n in range(101)]
    assert len(batch_request(many[:100], lambda _: "").checks) == 100
    with pytest.raises(ValueError, match="at most 100 checks, got 101"):
        batch_request(many, lambda _: "")
    with pytest.raises(TypeError, match="MembershipCheck and PermissionCheck"):
        batch_request(["editors"], lambda _: "")  # type: ignore[list-item]


def _status(code: int, reason: str) -> status_pb2.Status:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="watchword.auth.v1"))
    return status_pb2.Status(code=code, message=reason, details=[info])


def test_results_are_answers_or_errors_in_order() -> None:
    response = access.BatchCheckResponse(
        results=[
            access.CheckResult(allowed=True, revision="x1"),
            access.CheckResult(error=_status(code_pb2.UNAUTHENTICATED, "SESSION_INVALID")),
            access.CheckResult(allowed=False, revision="x1"),
            # A server bug (allowed with an error) is never taken for a yes.
            access.CheckResult(allowed=True, error=_status(code_pb2.OK, "")),
        ]
    )
    allowed, invalid, denied, odd = results_of(response, 4)
    assert (allowed.allowed, allowed.error, allowed.revision) == (True, None, "x1")
    assert not invalid.allowed
    assert isinstance(invalid.error, watchword.Unauthenticated)
    assert invalid.error.reason == "SESSION_INVALID"
    assert (denied.allowed, denied.error) == (False, None)
    assert not odd.allowed and isinstance(odd.error, watchword.Unknown)
    with pytest.raises(watchword.Unknown, match="4 results for 5 checks"):
        results_of(response, 5)


def test_a_result_has_no_truth_value() -> None:
    denied = CheckResult(allowed=False)
    with pytest.raises(TypeError, match="result.allowed"):
        bool(denied)
    with pytest.raises(TypeError):
        if denied:  # the mistake this prevents: every object is truthy
            pass


def test_checks_send_the_latest_write_within_the_window() -> None:
    clock = ManualSeconds(100.0)
    revisions = Revisions(True, clock)
    assert revisions.window == READ_YOUR_WRITES_WINDOW
    assert (revisions.last, revisions.min_revision(None)) == ("", "")
    revisions.note("x5")
    revisions.note("")  # an older server's empty revision is none
    assert (revisions.last, revisions.min_revision(None)) == ("x5", "x5")
    assert revisions.min_revision("") == ""  # an explicit argument wins
    assert revisions.min_revision("x3") == "x3"
    clock.now += READ_YOUR_WRITES_WINDOW
    assert (revisions.last, revisions.min_revision(None)) == ("x5", "")  # remembered, not sent
    revisions.note("x9")
    assert revisions.min_revision(None) == "x9"

    short = Revisions(2.5, clock)
    short.note("x1")
    clock.now += 2
    assert short.min_revision(None) == "x1"
    clock.now += 1
    assert short.min_revision(None) == ""

    never = Revisions(False, clock)
    never.note("x1")
    assert (never.last, never.min_revision(None), never.min_revision("x1")) == ("x1", "", "x1")
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="read_your_writes"):
            Revisions(bad)
