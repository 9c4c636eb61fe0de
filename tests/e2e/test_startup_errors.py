"""What `watchword` says when it cannot start: one line naming the problem, exit status ≠ 0."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.cli import complaint, watchword
from tests.support.net import free_port
from watchword_server.config import check_environment


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    result = watchword("serve", WATCHWORD_CONFIG=str(missing))
    assert result.returncode == 2
    assert complaint(result) == f"watchword: WATCHWORD_CONFIG={missing}: no such file"


def test_a_misspelt_variable_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    result = watchword("migrate", WATCHWORD_SESSION_EXPIRATON="60")
    assert result.returncode == 2
    assert complaint(result) == (
        "watchword: WATCHWORD_SESSION_EXPIRATON names no setting: "
        "did you mean WATCHWORD_SESSION_EXPIRATION?"
    )


def test_variables_of_clients_and_tests_are_only_warned_about() -> None:
    warnings = check_environment(
        {
            "WATCHWORD_SERVICE_KEY": "wwk_x",  # a client's, in the same shell
            "WATCHWORD_TEST_DATABASE_URL": "postgresql://x/y",
            "WATCHWORD_CONFIG": "w.toml",
            "WATCHWORD_SESSION_EXPIRATION": "60",
            "WATCHWORD_MESSAGES__LOGIN_INVALID": "No",
            "HOME": "/root",
        }
    )
    assert warnings == ["WATCHWORD_SERVICE_KEY names no setting of the server; it is ignored"]


def test_an_unreachable_database_is_one_line() -> None:
    url = f"postgresql+psycopg://watchword:s3cret@127.0.0.1:{free_port()}/watchword"
    for command in ("migrate", "serve"):
        result = watchword(command, WATCHWORD_DATABASE_URL=url)
        assert result.returncode == 1
        line = complaint(result)
        assert "cannot use the database" in line and "Connection refused" in line
        assert "s3cret" not in result.stderr


def test_a_missing_database_is_one_line(postgres_server_url: str) -> None:
    url = make_url(postgres_server_url).set(database="watchword_no_such_database")
    result = watchword("serve", WATCHWORD_DATABASE_URL=url.render_as_string(hide_password=False))
    assert result.returncode == 1
    assert 'database "watchword_no_such_database" does not exist' in complaint(result)


def test_an_invalid_setting_is_one_line_that_echoes_no_secret() -> None:
    result = watchword("serve", WATCHWORD_LISTEN="nope", WATCHWORD_HMAC_KEY="a-secret-pepper-123")
    assert result.returncode == 2
    assert complaint(result) == (
        "watchword: invalid setting listen: Value error, listen must be HOST:PORT"
    )
    assert "a-secret-pepper-123" not in result.stderr


def test_a_port_in_use_is_one_line(tmp_path: Path, taken_port: int) -> None:
    result = watchword(
        "serve",
        WATCHWORD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'ww.db'}",
        WATCHWORD_LISTEN=f"127.0.0.1:{taken_port}",
    )
    assert result.returncode == 1
    assert complaint(result) == f"watchword: 127.0.0.1:{taken_port} is already in use"
