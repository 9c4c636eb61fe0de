"""Operations (issue 11): Prometheus metrics after real traffic, and the access log: one
JSON line per RPC with a request id that also goes back to the caller, and no secret in
any line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.flows import PASSWORD, login, register_reply
from tests.support.net import free_port
from tests.support.processes import serve_process, server_env
from tests.support.replicas import create_keys, pinned_stubs
from tests.support.rpc_errors import details_of, failure
from tests.support.servers import StartServer, settings_for
from tests.support.smtp import SmtpServer, key_of, smtp_settings
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.app import StartupError, WatchwordServer
from watchword_server.logs import JsonFormatter

_EMAIL = "ada@example.com"


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:  # noqa: S310 - loopback
        return str(reply.read().decode())


def _value(body: str, name: str, **labels: str) -> float:
    """The sample ``name`` whose labels include ``labels`` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def test_metrics_count_every_rpc_by_code_and_time_it(start_server: StartServer) -> None:
    running = await start_server(metrics_listen="127.0.0.1:0")
    port = running.server.metrics_port
    assert port > 0
    before = await asyncio.to_thread(_scrape, port)
    assert _value(before, "grpc_server_handled_total", grpc_method="Authenticate") == 0

    user_id = (await register_reply(running)).user.id
    await login(running, _EMAIL)
    wrong = await failure(
        running.auth.Authenticate(auth.AuthenticateRequest(email=_EMAIL, password="nope" * 3))
    )
    assert wrong.code == grpc.StatusCode.UNAUTHENTICATED
    check = access.HasPermissionRequest(user_id=user_id, name="edit", table_name="posts")
    for _ in range(3):
        await running.access.HasPermission(check)

    body = await asyncio.to_thread(_scrape, port)
    auth_service = "watchword.auth.v1.AuthService"
    assert (
        _value(
            body,
            "grpc_server_handled_total",
            grpc_service=auth_service,
            grpc_method="Authenticate",
            grpc_code="OK",
        )
        == 1
    )
    assert (
        _value(
            body,
            "grpc_server_handled_total",
            grpc_method="Authenticate",
            grpc_code="UNAUTHENTICATED",
        )
        == 1
    )
    assert (
        _value(
            body,
            "watchword_rpc_refusals_total",
            grpc_method="Authenticate",
            reason="INVALID_CREDENTIALS",
        )
        == 1
    )
    assert (
        _value(
            body,
            "grpc_server_handled_total",
            grpc_method="HasPermission",
            grpc_code="OK",
            grpc_type="unary",
        )
        == 3
    )
    assert _value(body, "grpc_server_started_total", grpc_method="HasPermission") == 3
    assert _value(body, "grpc_server_handling_seconds_count", grpc_method="HasPermission") == 3
    assert _value(body, "grpc_server_handling_seconds_sum", grpc_method="Register") > 0
    # The first check read the database, the two after it were answered from the cache.
    assert _value(body, "watchword_check_cache_lookups_total", cache="check", result="hit") >= 2
    assert _value(body, "watchword_check_cache_lookups_total", cache="check", result="miss") >= 1
    assert 'watchword_database_connections_in_use{pool="sqlalchemy"}' in body
    assert "watchword_password_hashing_jobs" in body
    assert _value(body, "watchword_mail_outbox_waiting") == 0
    assert "watchword_mail_dead_letters" in body


async def test_metrics_show_throttling_and_mail_that_cannot_be_sent(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox is read every 10 s in production; a test cannot wait that long.
    monkeypatch.setattr("watchword_server.app._METRICS_REFRESH", 0.2)
    running = await start_server(
        metrics_listen="127.0.0.1:0",
        login_max_failures=2,
        registration_verification=True,
        smtp_host="127.0.0.1",
        smtp_port=free_port(),  # nothing listens: every delivery fails
        mail_sender="Watchword <watchword@example.com>",
        mail_max_attempts=2,
    )
    port = running.server.metrics_port
    await register_reply(running)  # its verification mail cannot be delivered
    wrong = auth.AuthenticateRequest(email=_EMAIL, password="nope" * 3)
    codes = [(await failure(running.auth.Authenticate(wrong))).code for _ in range(3)]
    assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED

    async def scraped_until(ready: Callable[[str], bool]) -> str:
        deadline = time.monotonic() + 15
        while True:
            body = await asyncio.to_thread(_scrape, port)
            if ready(body) or time.monotonic() > deadline:
                return body
            await asyncio.sleep(0.1)

    # After the first failed attempt the mail waits for its retry (2 s later), and ages.
    await scraped_until(lambda b: _value(b, "watchword_mail_outbox_waiting") == 1)
    running.clock.advance(1)
    body = await scraped_until(lambda b: _value(b, "watchword_mail_outbox_oldest_age_seconds") >= 1)
    assert _value(body, "watchword_mail_outbox_waiting") == 1
    assert _value(body, "watchword_mail_outbox_oldest_age_seconds") >= 1
    assert _value(body, "watchword_mail_dead_letters") == 0
    assert (
        _value(
            body,
            "watchword_rpc_refusals_total",
            grpc_method="Authenticate",
            reason="TOO_MANY_ATTEMPTS",
        )
        == 1
    )
    if running.server.settings.database_url.startswith("postgresql"):
        # The checks' prepared connections are open (SQLite has no pools to show).
        assert _value(body, "watchword_database_connections_max", pool="prepared") > 0
    # The second attempt fails too: it is given up, a dead letter, and nothing waits.
    running.clock.advance(2)
    body = await scraped_until(lambda b: _value(b, "watchword_mail_dead_letters") == 1)
    assert _value(body, "watchword_mail_dead_letters") == 1
    assert _value(body, "watchword_mail_outbox_waiting") == 0
    assert _value(body, "watchword_mail_outbox_oldest_age_seconds") == 0


async def test_a_metrics_port_in_use_stops_the_server_from_starting(
    start_server: StartServer, database_url: str
) -> None:
    first = await start_server(metrics_listen="127.0.0.1:0")
    taken = f"127.0.0.1:{first.server.metrics_port}"
    second = WatchwordServer(settings_for(database_url, metrics_listen=taken))
    try:
        with pytest.raises(StartupError, match=f"cannot serve metrics on {taken}"):
            await second.start()
    finally:
        await second.stop(0)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the process logs from INFO up, as the JSON lines `log_format = "json"` makes."""
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield output
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _rpc_lines(output: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "watchword.rpc"]


async def test_each_rpc_logs_one_json_line_with_its_request_id_and_no_secret(
    start_server: StartServer, smtp: SmtpServer, log_lines: io.StringIO
) -> None:
    running = await start_server(**smtp_settings(smtp), log_format="json", log_rpcs=True)
    registered = await register_reply(running)
    token = await login(running, _EMAIL)
    await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
    await running.access.HasMembership(
        access.HasMembershipRequest(session_token=token, group="editors")
    )
    await running.auth.RequestPasswordReset(auth.RequestPasswordResetRequest(email=_EMAIL))
    [mail] = await smtp.wait_for(1)
    reset_key = key_of(mail)
    new_password = "a whole new secret"
    await running.auth.ResetPassword(
        auth.ResetPasswordRequest(reset_key=reset_key, new_password=new_password)
    )
    second = await login(running, _EMAIL, new_password)
    wrong = await failure(
        running.auth.Authenticate(auth.AuthenticateRequest(email=_EMAIL, password=PASSWORD))
    )
    assert wrong.reason == "INVALID_CREDENTIALS"
    # A caller's own request id comes back, beside the error's rich details.
    call = running.auth.Logout(
        auth.LogoutRequest(session_token="not-a-session"),
        metadata=(("x-request-id", "caller-chosen-17"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert ("x-request-id", "caller-chosen-17") in tuple(refused.value.trailing_metadata() or ())
    assert details_of(refused.value).reason == "SESSION_INVALID"
    ok = running.auth.Logout(auth.LogoutRequest(session_token=second))
    await ok
    made = dict(await ok.trailing_metadata() or ())
    assert made.get("x-request-id")

    lines = _rpc_lines(log_lines)
    methods = [str(line["method"]).rpartition("/")[2] for line in lines]
    assert methods == [
        "Register",
        "Authenticate",
        "Introspect",
        "HasMembership",
        "RequestPasswordReset",
        "ResetPassword",
        "Authenticate",
        "Authenticate",
        "Logout",
        "Logout",
    ]
    for line in lines:
        assert {"code", "duration_ms", "peer", "request_id"} <= line.keys()
    assert [line["code"] for line in lines][-3:] == ["UNAUTHENTICATED", "UNAUTHENTICATED", "OK"]
    assert lines[-2]["request_id"] == "caller-chosen-17"
    assert lines[-1]["request_id"] == made["x-request-id"]
    assert len({line["request_id"] for line in lines}) == len(lines)
    assert lines[3]["key_id"]  # the access key's id, never the key
    assert lines[0]["user_id"] == registered.user.id

    everything = log_lines.getvalue()
    secrets = {
        PASSWORD,
        new_password,
        registered.session_token,
        token,
        second,
        reset_key,
        running.access_key,
        running.admin_key,
    }
    for secret in secrets:
        assert secret not in everything


@pytest.mark.postgres_only
async def test_workers_are_scraped_as_one_and_log_json_lines(
    database_url: str, tmp_path: Path
) -> None:
    (admin_key,) = await create_keys(database_url, "admin-metrics")
    metrics_port = free_port()
    env = server_env(
        database_url, metrics_listen=f"127.0.0.1:{metrics_port}", log_format="json", log_rpcs=True
    )
    log = tmp_path / "workers.log"
    async with serve_process(env, log, workers=2) as server:
        deadline = time.monotonic() + 30
        while log.read_text().count("watchword is serving on") < 2:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        by_worker = await pinned_stubs(server.address, admin_key, server.port)
        assert len(by_worker) == 2, "both workers should accept connections"
        request = access.HasPermissionRequest(
            user_id="00000000-0000-4000-8000-000000000000", name="edit"
        )
        try:
            for stubs in by_worker.values():
                for _ in range(3):
                    with pytest.raises(grpc.RpcError):  # no such user
                        await stubs.access.HasPermission(request)
        finally:
            for stubs in by_worker.values():
                for channel in stubs.channels:
                    await channel.close(None)
        body = await asyncio.to_thread(_scrape, metrics_port)
        assert (
            _value(
                body,
                "grpc_server_handled_total",
                grpc_method="HasPermission",
                grpc_code="NOT_FOUND",
            )
            == 6
        )
        assert (
            _value(
                body,
                "watchword_rpc_refusals_total",
                grpc_method="HasPermission",
                reason="USER_NOT_FOUND",
            )
            == 6
        )
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    checks = [line for line in lines if line.get("method", "").endswith("/HasPermission")]
    assert len(checks) == 6
    assert all(line["code"] == "NOT_FOUND" and line["request_id"] for line in checks)
    assert admin_key not in log.read_text()


@pytest.mark.postgres_only  # logging is the same whatever the database
async def test_log_level_leaves_out_what_is_below_it(database_url: str, tmp_path: Path) -> None:
    (admin_key,) = await create_keys(database_url, "admin-quiet")
    env = server_env(database_url, log_format="json", log_rpcs=True, log_level="warning")
    log = tmp_path / "quiet.log"
    async with serve_process(env, log) as server:
        (stubs,) = (await pinned_stubs(server.address, admin_key, server.port)).values()
        try:
            with pytest.raises(grpc.RpcError):  # no such user: an access line at INFO
                await stubs.access.HasPermission(
                    access.HasPermissionRequest(
                        user_id="00000000-0000-4000-8000-000000000000", name="edit"
                    )
                )
        finally:
            for channel in stubs.channels:
                await channel.close(None)
    # The warning that mail only goes to the log is there; the INFO lines (serving on ...,
    # the access line) are not.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    assert any("smtp_host is unset" in line["message"] for line in lines), lines
    assert {line["level"] for line in lines} <= {"warning", "error", "critical"}, lines
