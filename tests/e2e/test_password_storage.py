"""Hash algorithms, legacy Emmett hashes and pepper rotation, seen through logins."""

from __future__ import annotations

import grpc
import pytest

from tests.support.flows import register_reply
from tests.support.rows import table_rows, update_rows
from tests.support.rpc_errors import details_of
from tests.support.servers import TEST_PEPPER, Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth

EMMETT_HASH = "pbkdf2(2000,20,sha512)$0123456789abcdef$7801fac685382031f97f8da983134b333dfcc89f"


def stored_hash(database_url: str) -> str:
    [row] = table_rows(database_url, "users", "password_hash")
    return str(row["password_hash"])


async def set_stored_hash(database_url: str, value: str) -> None:
    await update_rows(database_url, "users", password_hash=value)


async def login(running: Running, password: str) -> str:
    reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=password)
    )
    return str(reply.session_token)


async def test_emmett_hash_logs_in_and_is_upgraded(watchword: Running, database_url: str) -> None:
    await register_reply(watchword)
    await set_stored_hash(database_url, EMMETT_HASH)  # as `import-emmett` would store it
    assert await login(watchword, "pocketuniverse")
    upgraded = stored_hash(database_url)
    assert upgraded.startswith("hmac-bcrypt$k1$")
    assert await login(watchword, "pocketuniverse")
    assert stored_hash(database_url) == upgraded  # no rehash once current


async def test_pbkdf2_algorithm_and_switch_back_to_bcrypt(
    start_server: StartServer, database_url: str
) -> None:
    pbkdf2 = await start_server(hmac_alg="pbkdf2(1000,32,sha256)")
    await register_reply(pbkdf2)
    assert stored_hash(database_url).startswith("hmac-pbkdf2(1000,32,sha256)$k1$")
    bcrypt = await start_server(hmac_alg="bcrypt(4)")
    assert await login(bcrypt, "correct horse battery")
    assert stored_hash(database_url).startswith("hmac-bcrypt$k1$$2b$04$")


async def test_old_pepper_still_logs_in_after_rotation_and_is_rehashed(
    start_server: StartServer, database_url: str
) -> None:
    before = await start_server()
    await register_reply(before)
    assert stored_hash(database_url).startswith("hmac-bcrypt$k1$")
    rotated = await start_server(
        hmac_key="the-new-pepper-0123456789",
        hmac_key_id="k2",
        hmac_retired_keys={"k1": TEST_PEPPER},
    )
    assert await login(rotated, "correct horse battery")
    assert stored_hash(database_url).startswith("hmac-bcrypt$k2$")
    assert await login(rotated, "correct horse battery")


async def test_a_hash_under_an_unknown_pepper_does_not_log_in(
    start_server: StartServer, database_url: str
) -> None:
    before = await start_server()
    await register_reply(before)
    forgotten = await start_server(hmac_key="the-new-pepper-0123456789", hmac_key_id="k2")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await login(forgotten, "correct horse battery")
    assert details_of(caught.value).reason == "INVALID_CREDENTIALS"
