"""ListEvents pages while another transaction (another server's, say) has drawn an event
id and not committed yet: once it commits, its event comes on a later page, however the
pages fell around it."""

from __future__ import annotations

import psycopg

from tests.support.postgres import conninfo
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2 as resources


async def _group(running: Running, name: str) -> None:
    await running.admin.CreateGroup(admin.CreateGroupRequest(group=resources.Group(name=name)))


async def test_an_event_that_commits_after_a_page_passed_its_id_comes_on_a_later_page(
    start_server: StartServer, database_url: str
) -> None:
    running = await start_server()
    for name in ("a", "b", "c"):
        await _group(running, name)  # one group_created event each
    late_writer = await psycopg.AsyncConnection.connect(conninfo(database_url))
    try:
        row = await (
            await late_writer.execute(
                "INSERT INTO events (kind, user_id, description, client_ip, origin, "
                "create_time) VALUES ('group_created', NULL, 'late', '', 'elsewhere', now()) "
                "RETURNING id"
            )
        ).fetchone()
        assert row is not None
        late_id = str(row[0])  # an Event's id is opaque text on the wire
        for name in ("d", "e"):
            await _group(running, name)  # committed, with ids above the late one
        first = await running.admin.ListEvents(admin.ListEventsRequest(page_size=4))
        assert int(first.events[-1].id) > int(late_id)  # the page went past it
        assert late_id not in [event.id for event in first.events]
        assert first.next_page_token
        await late_writer.commit()
    finally:
        await late_writer.close()
    rest: list[str] = []
    token = first.next_page_token
    while token:
        page = await running.admin.ListEvents(
            admin.ListEventsRequest(page_size=4, page_token=token)
        )
        rest += [event.id for event in page.events]
        token = page.next_page_token
    assert late_id in rest
    seen = [event.id for event in first.events] + rest
    assert len(seen) == len(set(seen)) == 6  # every event once, none twice
