"""AdminService.LogEvent: the application's own events, listed and streamed like ours."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.support.flows import login, register
from tests.support.rows import table_rows
from tests.support.rpc_errors import failure
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import admin_service_pb2_grpc, resources_pb2


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


DATA = {"invoice": "INV-7", "amount": 12.5, "lines": [1, 2], "paid": True, "refund": None}


async def test_an_event_is_stored_as_given_and_listed_by_user_and_kind(
    watchword: Running,
) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    await login(watchword, "ada@example.com")
    # Template-like text is the application's own: stored and returned as given.
    description = "Invoice {id} paid by {email}\nline two"
    reply = await watchword.admin.LogEvent(
        admin.LogEventRequest(description=description, user_id=ada, data=struct(DATA)),
        metadata=(("x-forwarded-for", "203.0.113.7"),),
    )
    event = reply.event
    assert event.kind == resources_pb2.EVENT_KIND_APPLICATION
    assert (event.description, event.user_id) == (description, ada)
    assert event.origin.startswith("admin:test-admin-")  # the calling key's, by default
    assert event.client_ip == "203.0.113.7"  # the end user's, as for other admin events
    assert event.data == struct(DATA)
    assert event.id and event.create_time.seconds > 0

    mine = await watchword.admin.ListEvents(
        admin.ListEventsRequest(user_id=ada, kind=resources_pb2.EVENT_KIND_APPLICATION)
    )
    assert list(mine.events) == [event]
    everything = await watchword.admin.ListEvents(admin.ListEventsRequest(user_id=ada))
    assert [e.kind for e in everything.events] == [
        resources_pb2.EVENT_KIND_REGISTRATION,
        resources_pb2.EVENT_KIND_LOGIN,
        resources_pb2.EVENT_KIND_APPLICATION,
    ]
    # Ours carry data too: an empty Struct, set.
    for ours in everything.events[:2]:
        assert ours.HasField("data") and not ours.data.fields
    logins = await watchword.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    assert [e.kind for e in logins.events] == [resources_pb2.EVENT_KIND_LOGIN]


async def test_origin_and_no_user_and_no_data(watchword: Running, database_url: str) -> None:
    reply = await watchword.admin.LogEvent(
        admin.LogEventRequest(description="Nightly export ran", origin="cron")
    )
    assert (reply.event.origin, reply.event.user_id) == ("cron", "")
    assert reply.event.HasField("data") and not reply.event.data.fields
    [row] = table_rows(database_url, "events", "kind", "user_id", "origin", "data")
    assert row == {"kind": "application", "user_id": None, "origin": "cron", "data": {}}
    listed = await watchword.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_APPLICATION)
    )
    assert list(listed.events) == [reply.event]


async def test_watchers_receive_it_with_its_data(watchword: Running) -> None:
    stream = watchword.admin.WatchEvents(
        admin.WatchEventsRequest(kind=resources_pb2.EVENT_KIND_APPLICATION)
    )
    await stream.initial_metadata()  # the server says: subscribed
    await register(watchword, "ada@example.com")  # a registration: filtered out
    reply = await watchword.admin.LogEvent(
        admin.LogEventRequest(description="Report sent", data=struct({"to": ["ops"]}))
    )
    async with asyncio.timeout(5):
        seen = await stream.read()
    assert isinstance(seen, admin.WatchEventsResponse)
    assert seen.event == reply.event
    assert seen.event.data["to"] == struct({"to": ["ops"]})["to"]
    stream.cancel()


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels):
        value = {"next": value}
    return value


@pytest.mark.parametrize(
    ("request_fields", "field", "says"),
    [
        ({"description": ""}, "description", "required"),
        ({"description": "  \n "}, "description", "required"),
        ({"description": "x" * 2001}, "description", "at most 2000"),
        ({"description": "bell\x07"}, "description", "control characters"),
        ({"description": "nul\x00"}, "description", "control characters"),
        ({"description": "ok", "origin": "o" * 256}, "origin", "at most 255"),
        ({"description": "ok", "origin": "cron\n"}, "origin", "control characters"),
        ({"description": "ok", "data": struct({"blob": "x" * 17_000})}, "data", "16 KiB"),
        ({"description": "ok", "data": struct(_deep(9))}, "data.next", "nested too deeply"),
        ({"description": "ok", "data": struct({"n": float("nan")})}, "data.n", "finite"),
        ({"description": "ok", "data": struct({"t": "a\x00b"})}, "data.t", "NUL"),
    ],
)
async def test_bad_input_is_a_field_violation(
    watchword: Running,
    database_url: str,
    request_fields: dict[str, object],
    field: str,
    says: str,
) -> None:
    bad = await failure(watchword.admin.LogEvent(admin.LogEventRequest(**request_fields)))  # type: ignore[arg-type]
    assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    [(_, description)] = [
        (name, text) for name, text in bad.violations.items() if name.startswith(field)
    ]
    assert says in description, description
    assert table_rows(database_url, "events", "id") == []


async def test_every_problem_is_told_at_once(watchword: Running) -> None:
    bad = await failure(
        watchword.admin.LogEvent(admin.LogEventRequest(description="", origin="o" * 300))
    )
    assert set(bad.violations) == {"description", "origin"}


async def test_the_longest_allowed_values_are_kept(watchword: Running) -> None:
    description, origin = "é" * 2000, "o" * 255
    reply = await watchword.admin.LogEvent(
        admin.LogEventRequest(description=description, origin=origin, data=struct(_deep(7)))
    )
    assert (reply.event.description, reply.event.origin) == (description, origin)
    listed = await watchword.admin.ListEvents(admin.ListEventsRequest())
    assert listed.events[-1].data == struct(_deep(7))


@pytest.mark.parametrize("user_id", ["00000000-0000-4000-8000-000000000000", "not-an-id"])
async def test_an_unknown_user_is_not_found(
    watchword: Running, database_url: str, user_id: str
) -> None:
    missing = await failure(
        watchword.admin.LogEvent(admin.LogEventRequest(description="x", user_id=user_id))
    )
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    assert table_rows(database_url, "events", "id") == []


async def test_a_deleted_users_application_events_stay(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    logged = await watchword.admin.LogEvent(admin.LogEventRequest(description="x", user_id=ada))
    await watchword.admin.DeleteUser(admin.DeleteUserRequest(user_id=ada))
    listed = await watchword.admin.ListEvents(
        admin.ListEventsRequest(user_id=ada, kind=resources_pb2.EVENT_KIND_APPLICATION)
    )
    assert list(listed.events) == [logged.event]


async def test_written_even_when_log_events_is_off(start_server: StartServer) -> None:
    # log_events is about Watchword's own events; an application asking to log is explicit.
    running = await start_server(log_events=False)
    ada, _ = await register(running, "ada@example.com")
    await running.admin.LogEvent(admin.LogEventRequest(description="x", user_id=ada))
    listed = await running.admin.ListEvents(admin.ListEventsRequest())
    assert [e.kind for e in listed.events] == [resources_pb2.EVENT_KIND_APPLICATION]


async def test_disabled_rpcs_switch_it_off(start_server: StartServer, database_url: str) -> None:
    running = await start_server(disabled_rpcs=["LogEvent"])
    disabled = await failure(running.admin.LogEvent(admin.LogEventRequest(description="x")))
    assert (disabled.code, disabled.reason) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_DISABLED")
    assert table_rows(database_url, "events", "id") == []
    # Reading the log is untouched.
    await running.admin.ListEvents(admin.ListEventsRequest())


async def test_it_needs_an_admin_key(watchword: Running) -> None:
    plain = admin_service_pb2_grpc.AdminServiceStub(watchword.channel)
    request = admin.LogEventRequest(description="x")
    no_key = await failure(plain.LogEvent(request))
    assert no_key.reason == "SERVICE_KEY_MISSING"
    access_key = (("authorization", f"Bearer {watchword.access_key}"),)
    scoped = await failure(plain.LogEvent(request, metadata=access_key))
    assert (scoped.code, scoped.reason) == (grpc.StatusCode.PERMISSION_DENIED, "SCOPE_INSUFFICIENT")
