"""The hot path: a repeated check is answered by the synchronous cache lookups that the
servicers and the key gate try first (``AccessChecks.known_*``, ``Sessions.known_user_key``,
``ServiceKeys.known``), which build their cache keys themselves. Were those keys to part
from the ones the full checks store under, every answer would still be right, only slow
(each call would fall through to the full check): this is the test that notices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from tests.support.flows import register
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2
from watchword_server.domain.access.checks import Subject, SubjectKind
from watchword_server.domain.access.service_keys import Scope
from watchword_server.model.records import Grant


async def _until_known(ask: Callable[[], Awaitable[object]], known: Callable[[], object]) -> object:
    # The cache is on once the process listens for changes: ask until the lookup answers.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await ask()
        found = known()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("the cache lookup never answered")


async def test_repeated_checks_are_answered_by_the_cache_lookups(watchword: Running) -> None:
    user_id, token = await register(watchword, "ada@example.com")
    await watchword.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="editors"))
    )
    await watchword.admin.AddMembership(
        admin.AddMembershipRequest(group="editors", user_id=user_id)
    )
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="edit", table_name="post")
    )
    domain = watchword.server.domain
    assert domain is not None
    checks, keys = domain.checks, domain.service_keys
    by_session = Subject(SubjectKind.SESSION_TOKEN, token)
    by_id = Subject(SubjectKind.USER_ID, user_id)
    edit = Grant("edit", "post", "")

    member = await _until_known(
        lambda: watchword.access.HasMembership(
            access.HasMembershipRequest(group="editors", session_token=token)
        ),
        lambda: checks.known_membership(by_session, "editors"),
    )
    assert getattr(member, "allowed", None) is True
    allowed = await _until_known(
        lambda: watchword.access.HasPermission(
            access.HasPermissionRequest(user_id=user_id, name="edit", table_name="post")
        ),
        lambda: checks.known_permission(by_id, edit),
    )
    assert getattr(allowed, "allowed", None) is True
    through_session = await _until_known(
        lambda: watchword.access.HasPermission(
            access.HasPermissionRequest(session_token=token, name="edit", table_name="post")
        ),
        lambda: checks.known_permission(by_session, edit),
    )
    assert getattr(through_session, "allowed", None) is True
    assert domain.sessions.known_user_key(token) == user_id
    await watchword.auth.Introspect(auth.IntrospectRequest(session_token=token))
    # The key every call above carried, as the key gate finds it (and as admin needs more).
    caller = keys.known(f"Bearer {watchword.access_key}", Scope.ACCESS)
    assert caller is not None and caller.scope is Scope.ACCESS
    # A question never asked is not known: the lookups do not answer at random.
    assert checks.known_membership(by_session, "writers") is None
    assert domain.sessions.known_user_key(token + "x") is None
    assert keys.known("Bearer wwk_made_up", Scope.ACCESS) is None
