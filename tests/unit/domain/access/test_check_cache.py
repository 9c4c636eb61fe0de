"""The check cache's own rules: what a change drops, the generation guard, staleness, the
bound on entries, and min_revision."""

from __future__ import annotations

import uuid

from watchword_server.domain.access.changes import Change
from watchword_server.domain.access.check_cache import CheckCache

USER = uuid.UUID("00000000-0000-0000-0000-000000000001")
OTHER = uuid.UUID("00000000-0000-0000-0000-000000000002")


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(**options: float) -> tuple[CheckCache, FakeTime]:
    time = FakeTime()
    values = {"max_staleness": 30.0, **options}
    made = CheckCache(
        max_staleness=values["max_staleness"],
        max_entries=int(values.get("max_entries", 100)),
        monotonic=time,
    )
    made.enable()
    return made, time


def put(made: CheckCache, key: object, value: object, *tags: object, revision: str = "") -> None:
    made.put(key, value, generation=made.generation, revision=revision, tags=tags)


def test_a_change_drops_what_it_names_and_nothing_else() -> None:
    made, _ = cache()
    put(made, ("m", "u1", "g"), True, ("user", USER), ("group", "g"))
    put(made, ("p", "u1", "edit", "", ""), True, ("user", USER), ("name", "edit"))
    put(made, ("p", "u2", "edit", "", ""), True, ("user", OTHER), ("name", "edit"))
    put(made, ("p", "u2", "read", "", ""), True, ("user", OTHER), ("name", "read"))
    put(made, ("session", b"d"), "row", ("user", USER))
    made.apply(Change(permission_names=frozenset({"edit"})), "x10")
    assert made.get(("p", "u1", "edit", "", "")) is None
    assert made.get(("p", "u2", "edit", "", "")) is None
    assert made.get(("p", "u2", "read", "", "")) is not None
    assert made.get(("m", "u1", "g")) is not None
    made.apply(Change.of_users(USER), "x11")
    assert made.get(("m", "u1", "g")) is None
    assert made.get(("session", b"d")) is None
    assert made.get(("p", "u2", "read", "", "")) is not None
    made.apply(Change(sessions=frozenset({b"e"})), "x12")
    assert len(made) == 1
    made.apply(Change(everything=True), "x13")
    assert len(made) == 0


def test_an_entry_keyed_by_a_change_s_tag_is_dropped_too() -> None:
    made, _ = cache()
    put(made, ("session", b"d"), "row", ("user", USER))
    put(made, ("service_key", b"k"), "caller", ("key", OTHER))
    made.apply(Change(sessions=frozenset({b"d"})), "")
    assert made.get(("session", b"d")) is None
    made.apply(Change(keys=frozenset({OTHER})), "")
    assert made.get(("service_key", b"k")) is None
    assert len(made) == 0


def test_an_answer_read_while_a_change_was_applied_is_not_stored() -> None:
    made, _ = cache()
    before = made.generation
    # The read began before this change was applied and may predate it.
    made.apply(Change.of_users(USER), "x1")
    made.put(("m", "u1", "g"), True, generation=before, revision="", tags=[("user", USER)])
    assert made.get(("m", "u1", "g")) is None
    made.put(("m", "u1", "g"), True, generation=made.generation, revision="x1")
    assert made.get(("m", "u1", "g")) is not None


def test_entries_age_out_after_max_staleness() -> None:
    made, time = cache(max_staleness=5)
    put(made, "k", True)
    time.now += 5
    assert made.get("k") is not None
    time.now += 0.01
    assert made.get("k") is None


def test_zero_staleness_caches_nothing() -> None:
    made, _ = cache(max_staleness=0)
    assert not made.enabled
    put(made, "k", True)
    assert made.get("k") is None


def test_disabled_it_forgets_everything_and_stores_nothing() -> None:
    made, _ = cache()
    put(made, "k", True, ("user", USER))
    made.disable()
    assert made.get("k") is None
    put(made, "k", True)
    assert made.get("k") is None and len(made) == 0
    made.enable()
    assert made.get("k") is None
    put(made, "k", True)
    assert made.get("k") is not None


def test_the_oldest_entries_go_first_and_leave_no_tag_behind() -> None:
    made, _ = cache(max_entries=3)
    for index in range(5):
        put(made, f"k{index}", index, ("user", USER), ("n", index))
    assert len(made) == 3
    assert made.get("k0") is None and made.get("k1") is None and made.get("k4") is not None
    made.apply(Change.of_users(USER), "")
    assert len(made) == 0
    assert made._tags == {}  # no tag outlives its entries


def test_min_revision_uses_the_cache_only_once_that_revision_is_applied() -> None:
    made, _ = cache()
    put(made, "k", True, revision="x1")
    assert made.get("k", "x2") is None  # not heard yet: read the database
    assert not made.usable_for("x2")
    made.apply(Change(), "x2")
    entry = made.get("k", "x2")
    assert entry is not None and entry.revision == "x1"
    assert made.usable_for("x2") and made.usable_for("")
    assert made.revision == "x2"
