"""`watchword migrate` needs no pepper, and no command prints Alembic's chatter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cli import watchword_cli
from tests.support.postgres import postgres_database
from watchword_server.storage.schema import head_revision


@pytest.fixture
def empty_database(postgres_server_url: str) -> Iterator[str]:
    with postgres_database(server_url=postgres_server_url) as url:
        yield url


def test_migrate_on_postgresql_needs_no_pepper(empty_database: str) -> None:
    migrated = watchword_cli(empty_database, "migrate", pepper=False)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip() == (
        f"watchword: the database schema is migrated from empty to {head_revision()}"
    )
    again = watchword_cli(empty_database, "migrate", pepper=False)
    assert again.stdout.strip() == (
        f"watchword: the database schema is up to date (revision {head_revision()})"
    )
    # Everything that hashes or signs still needs it.
    refused = watchword_cli(empty_database, "keys", "list", pepper=False)
    assert refused.returncode == 2
    assert "hmac_key is required" in refused.stderr


def test_commands_print_no_alembic_lines(empty_database: str) -> None:
    for arguments in (("migrate",), ("keys", "list"), ("mail", "dead")):
        ran = watchword_cli(empty_database, *arguments)
        assert ran.returncode == 0, ran.stderr
        assert "alembic" not in ran.stderr, ran.stderr
        assert " INFO " not in ran.stderr, ran.stderr
