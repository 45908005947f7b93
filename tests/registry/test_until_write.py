"""UntilWrite: reads kept until the store's next write, never past it."""

from __future__ import annotations

from registry.store.until_write import UntilWrite


class Writes:
    def __init__(self) -> None:
        self.count = 0


def test_entries_stand_until_the_write_count_moves() -> None:
    writes = Writes()
    kept: UntilWrite[str, int] = UntilWrite(lambda: writes.count)
    kept.put("a", 1, kept.since())
    assert kept.get("a") == 1
    writes.count += 1
    assert kept.get("a") is None


def test_a_value_read_before_a_write_that_committed_since_is_not_kept() -> None:
    writes = Writes()
    kept: UntilWrite[str, int] = UntilWrite(lambda: writes.count)
    since = kept.since()
    writes.count += 1  # a publish commits while the value is being computed
    kept.put("a", 1, since)
    assert kept.get("a") is None
    kept.put("a", 2, kept.since())
    assert kept.get("a") == 2


def test_past_the_bound_nothing_more_is_kept_until_the_next_write() -> None:
    writes = Writes()
    kept: UntilWrite[int, int] = UntilWrite(lambda: writes.count, max_entries=2)
    since = kept.since()
    for key in range(3):
        kept.put(key, key, since)
    assert [kept.get(key) for key in range(3)] == [0, 1, None]
    writes.count += 1
    kept.put(2, 2, kept.since())
    assert kept.get(2) == 2 and kept.get(0) is None
