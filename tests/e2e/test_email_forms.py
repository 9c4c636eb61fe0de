"""One address, one account, whatever its case or Unicode form: the same rule on
PostgreSQL and on the embedded SQLite file, for registration, login and a burst of
parallel registrations."""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path

import grpc
import pytest

from tests.support.flows import PASSWORD, login
from tests.support.rpc_errors import details_of
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth

# Each row: the address registered first, then other forms of the same address.
SAME_ADDRESS = [
    ("İlse@example.com", ["i̇lse@example.com", "İLSE@EXAMPLE.COM"]),
    ("Straße@example.com", ["strasse@example.com", "STRASSE@example.com"]),
    ("jos\u00e9@example.com", ["jose\u0301@example.com", "JOSE\u0301@example.com"]),
]


@pytest.fixture(params=["postgresql", "sqlite"])
async def running(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> Running:
    if request.param == "sqlite":
        return await start_server(database_url=f"sqlite+aiosqlite:///{tmp_path}/w.db")
    return await start_server()


async def _register(running: Running, email: str) -> auth.RegisterResponse:
    return await running.auth.Register(
        auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="B")
    )


@pytest.mark.parametrize(("first", "others"), SAME_ADDRESS)
async def test_other_forms_of_an_address_are_the_same_account(
    running: Running, first: str, others: list[str]
) -> None:
    registered = await _register(running, first)
    assert registered.user.email == unicodedata.normalize("NFC", first)
    for other in others:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _register(running, other)
        assert details_of(caught.value).reason == "EMAIL_ALREADY_EXISTS", other
    # The account logs in with the address it registered, and with every other form.
    for form in (first, *others):
        assert await login(running, form), form


async def test_parallel_registrations_of_one_address_in_many_forms_make_one_account(
    running: Running,
) -> None:
    forms = ["İlse@example.com", "i̇lse@example.com", "İLSE@example.com", "i̇LSE@EXAMPLE.COM"]
    outcomes = await asyncio.gather(
        *(_register(running, form) for form in forms * 5), return_exceptions=True
    )
    created = [o for o in outcomes if isinstance(o, auth.RegisterResponse)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(created) == 1 and len(refused) == len(outcomes) - 1
    assert {details_of(error).reason for error in refused} == {"EMAIL_ALREADY_EXISTS"}
    assert await login(running, "İlse@example.com")
