"""Fixtures of the requires tests: a counting client of the live Watchword, and its guard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.requires_demo import (
    CountingClient,
)
from tests.support.servers import Running
from watchword import (
    Guard,
)


@pytest.fixture
async def client(watchword: Running) -> AsyncIterator[CountingClient]:
    async with CountingClient(watchword.address, service_key=watchword.access_key) as client:
        yield client


@pytest.fixture
def guard(client: CountingClient) -> Guard:
    return Guard(client)
