"""ChangePassword, GetProfile, UpdateProfile and custom user fields."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from tests.support.flows import PASSWORD, register_reply
from tests.support.rows import table_rows
from tests.support.rpc_errors import details_of, failure
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2

FIELDS = [
    {"name": "nickname", "registration": True, "profile": True},
    {"name": "age", "type": "integer", "registration": True, "profile": True},
    {"name": "newsletter", "type": "boolean", "profile": True},
    {"name": "tier", "type": "string"},  # administrators' only, as undeclared writability
    {"name": "country", "type": "string", "required": True, "registration": True},
]


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


async def test_change_password_keeps_this_session_and_revokes_the_others(
    watchword: Running,
) -> None:
    current = (await register_reply(watchword)).session_token
    other = (
        await watchword.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    ).session_token
    await watchword.auth.ChangePassword(
        auth.ChangePasswordRequest(
            session_token=current, old_password=PASSWORD, new_password="a brand new secret"
        )
    )
    await watchword.auth.Introspect(auth.IntrospectRequest(session_token=current))
    details = await failure(watchword.auth.Introspect(auth.IntrospectRequest(session_token=other)))
    assert details.reason == "SESSION_INVALID"
    old = await failure(
        watchword.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    )
    assert old.reason == "INVALID_CREDENTIALS"
    await watchword.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password="a brand new secret")
    )


async def test_change_password_with_a_wrong_old_password(watchword: Running) -> None:
    token = (await register_reply(watchword)).session_token
    details = await failure(
        watchword.auth.ChangePassword(
            auth.ChangePasswordRequest(
                session_token=token, old_password="not it at all", new_password="new secret!"
            )
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "PASSWORD_INCORRECT"
    assert set(details.violations) == {"old_password"}


async def test_change_password_checks_the_new_one_and_the_session(watchword: Running) -> None:
    token = (await register_reply(watchword)).session_token
    short = await failure(
        watchword.auth.ChangePassword(
            auth.ChangePasswordRequest(
                session_token=token, old_password=PASSWORD, new_password="short"
            )
        )
    )
    assert set(short.violations) == {"new_password"}
    logged_out = await failure(
        watchword.auth.ChangePassword(
            auth.ChangePasswordRequest(
                session_token="gone", old_password=PASSWORD, new_password="long enough!"
            )
        )
    )
    assert logged_out.reason == "SESSION_INVALID"


async def test_get_profile(watchword: Running) -> None:
    registered = await register_reply(watchword)
    profile = await watchword.auth.GetProfile(
        auth.GetProfileRequest(session_token=registered.session_token)
    )
    assert profile.user == registered.user


async def test_update_profile_names_with_a_mask(watchword: Running) -> None:
    token = (await register_reply(watchword)).session_token
    reply = await watchword.auth.UpdateProfile(
        auth.UpdateProfileRequest(
            session_token=token,
            user=resources_pb2.User(first_name="Augusta", last_name="ignored"),
            update_mask=field_mask_pb2.FieldMask(paths=["first_name"]),
        )
    )
    assert (reply.user.first_name, reply.user.last_name) == ("Augusta", "Lovelace")
    again = await watchword.auth.GetProfile(auth.GetProfileRequest(session_token=token))
    assert again.user.first_name == "Augusta"


@pytest.mark.parametrize("path", ["email", "status", "id"])
async def test_email_and_status_are_read_only(watchword: Running, path: str) -> None:
    token = (await register_reply(watchword)).session_token
    details = await failure(
        watchword.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=token,
                user=resources_pb2.User(
                    email="eve@example.com", status=resources_pb2.USER_STATUS_ACTIVE
                ),
                update_mask=field_mask_pb2.FieldMask(paths=[path]),
            )
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details.violations) == {"update_mask"}


async def test_custom_fields_at_registration(start_server: StartServer, database_url: str) -> None:
    running = await start_server(custom_fields=FIELDS)
    registered = await register_reply(
        running, extra={"nickname": "ada", "age": 36, "country": "UK"}
    )
    assert dict(registered.user.extra) == {"nickname": "ada", "age": 36, "country": "UK"}
    [row] = table_rows(database_url, "users", "extra")
    assert row["extra"] == {"nickname": "ada", "age": 36, "country": "UK"}


@pytest.mark.parametrize(
    ("extra", "bad"),
    [
        ({"country": "UK", "shoe_size": 9}, "extra.shoe_size"),  # unknown
        ({"country": "UK", "newsletter": True}, "extra.newsletter"),  # not at registration
        ({"country": "UK", "tier": "gold"}, "extra.tier"),  # admin only
        ({"country": "UK", "age": 36.5}, "extra.age"),  # not an integer
        ({"country": "UK", "nickname": 7}, "extra.nickname"),  # not a string
        ({}, "extra.country"),  # required
    ],
)
async def test_bad_custom_fields_at_registration(
    start_server: StartServer, extra: dict[str, Any], bad: str
) -> None:
    running = await start_server(custom_fields=FIELDS)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register_reply(running, extra=extra)
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(details.violations) == {bad}


async def test_profile_updates_profile_writable_fields_only(start_server: StartServer) -> None:
    running = await start_server(custom_fields=FIELDS)
    token = (
        await register_reply(running, extra={"nickname": "ada", "country": "UK"})
    ).session_token
    updated = await running.auth.UpdateProfile(
        auth.UpdateProfileRequest(
            session_token=token,
            user=resources_pb2.User(extra=struct({"newsletter": True, "nickname": "countess"})),
            update_mask=field_mask_pb2.FieldMask(paths=["extra.newsletter", "extra.nickname"]),
        )
    )
    assert dict(updated.user.extra) == {"nickname": "countess", "newsletter": True, "country": "UK"}
    refused = await failure(
        running.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=token,
                user=resources_pb2.User(extra=struct({"country": "FR"})),
                update_mask=field_mask_pb2.FieldMask(paths=["extra.country"]),
            )
        )
    )
    assert set(refused.violations) == {"extra.country"}
    # Replacing all of `extra` keeps the fields users may not write.
    replaced = await running.auth.UpdateProfile(
        auth.UpdateProfileRequest(
            session_token=token,
            user=resources_pb2.User(extra=struct({"age": 37})),
            update_mask=field_mask_pb2.FieldMask(paths=["extra"]),
        )
    )
    assert dict(replaced.user.extra) == {"age": 37, "country": "UK"}


async def test_a_field_is_users_to_write_only_when_declared_so(start_server: StartServer) -> None:
    # {"name": "role"} says nothing about who writes it: only administrators may.
    running = await start_server(custom_fields=[{"name": "role"}])
    refused = await failure(register_reply(running, extra={"role": "admin"}))
    assert set(refused.violations) == {"extra.role"}
    reply = await register_reply(running)
    profile_write = await failure(
        running.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=reply.session_token,
                user=resources_pb2.User(extra=struct({"role": "admin"})),
                update_mask=field_mask_pb2.FieldMask(paths=["extra.role"]),
            )
        )
    )
    assert set(profile_write.violations) == {"extra.role"}
    updated = await running.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(id=reply.user.id, extra=struct({"role": "editor"})),
            update_mask=field_mask_pb2.FieldMask(paths=["extra"]),
        )
    )
    assert dict(updated.user.extra) == {"role": "editor"}
    # Readable, not writable: the user sees what the administrator set, and still may not
    # change it, alone or by replacing all of `extra`.
    token = reply.session_token
    profile = await running.auth.GetProfile(auth.GetProfileRequest(session_token=token))
    assert dict(profile.user.extra) == {"role": "editor"}
    introspected = await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
    assert dict(introspected.user.extra) == {"role": "editor"}
    replace = await failure(
        running.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=token,
                user=resources_pb2.User(extra=struct({"role": "admin"})),
                update_mask=field_mask_pb2.FieldMask(paths=["extra"]),
            )
        )
    )
    assert replace.code == grpc.StatusCode.INVALID_ARGUMENT
    assert replace.violations == {"extra.role": "role is not writable here"}
    cleared = await running.auth.UpdateProfile(
        auth.UpdateProfileRequest(
            session_token=token,
            user=resources_pb2.User(first_name="Ada"),
            update_mask=field_mask_pb2.FieldMask(paths=["first_name", "extra"]),
        )
    )
    assert dict(cleared.user.extra) == {"role": "editor"}  # replacing `extra` keeps it


async def test_an_unreadable_field_is_hidden_from_the_user_not_the_admin(
    start_server: StartServer,
) -> None:
    running = await start_server(
        custom_fields=[
            {"name": "nickname", "registration": True},
            {"name": "risk", "readable": False},
        ]
    )
    reply = await register_reply(running, extra={"nickname": "ada"})
    await running.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(
                id=reply.user.id, extra=struct({"nickname": "ada", "risk": "high"})
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["extra"]),
        )
    )
    token = reply.session_token
    profile = await running.auth.GetProfile(auth.GetProfileRequest(session_token=token))
    introspected = await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
    login = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
    )
    updated = await running.auth.UpdateProfile(
        auth.UpdateProfileRequest(
            session_token=token,
            user=resources_pb2.User(first_name="Augusta"),
            update_mask=field_mask_pb2.FieldMask(paths=["first_name"]),
        )
    )
    for seen in (profile.user, introspected.user, login.user, updated.user):
        assert dict(seen.extra) == {"nickname": "ada"}
    for admin_view in (
        (await running.admin.GetUser(admin.GetUserRequest(user_id=reply.user.id))).user,
        (await running.admin.LookupUser(admin.LookupUserRequest(email="ada@example.com"))).user,
        (await running.admin.ListUsers(admin.ListUsersRequest())).users[0],
    ):
        assert dict(admin_view.extra) == {"nickname": "ada", "risk": "high"}


async def test_a_hidden_field_is_refused_as_an_unknown_one(start_server: StartServer) -> None:
    # Telling "not writable" from "not declared" would tell the user that it exists.
    running = await start_server(custom_fields=[{"name": "risk", "readable": False}])
    at_registration = await failure(register_reply(running, extra={"risk": "low"}))
    unknown = await failure(register_reply(running, extra={"nope": "low"}))
    assert at_registration.violations == {"extra.risk": "risk is not a declared custom field"}
    assert unknown.violations == {"extra.nope": "nope is not a declared custom field"}
    token = (await register_reply(running)).session_token
    for paths in (["extra.risk"], ["extra"]):
        refused = await failure(
            running.auth.UpdateProfile(
                auth.UpdateProfileRequest(
                    session_token=token,
                    user=resources_pb2.User(extra=struct({"risk": "low"})),
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                )
            )
        )
        assert refused.violations == {"extra.risk": "risk is not a declared custom field"}


async def test_a_write_only_field_is_kept_when_the_user_replaces_what_it_sees(
    start_server: StartServer,
) -> None:
    # readable false, profile true: the user may set it but never sees it back.
    running = await start_server(
        custom_fields=[
            {"name": "nickname", "registration": True, "profile": True},
            {"name": "answer", "profile": True, "readable": False, "required": True},
        ]
    )
    reply = await register_reply(running, extra={"nickname": "ada"})
    token = reply.session_token

    async def update(values: dict[str, Any], paths: list[str]) -> resources_pb2.User:
        updated = await running.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=token,
                user=resources_pb2.User(extra=struct(values)),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            )
        )
        user: resources_pb2.User = updated.user
        return user

    async def stored() -> dict[str, Any]:
        got = await running.admin.GetUser(admin.GetUserRequest(user_id=reply.user.id))
        return dict(got.user.extra)

    seen = await update({"answer": "blue"}, ["extra.answer"])
    assert dict(seen.extra) == {"nickname": "ada"}
    assert await stored() == {"nickname": "ada", "answer": "blue"}
    # Replacing all it sees (required or not, the hidden field is not missing): kept.
    seen = await update({"nickname": "countess"}, ["extra"])
    assert dict(seen.extra) == {"nickname": "countess"}
    assert await stored() == {"nickname": "countess", "answer": "blue"}
    # Sent within a replacement, it is written.
    await update({"nickname": "countess", "answer": "green"}, ["extra"])
    assert await stored() == {"nickname": "countess", "answer": "green"}
