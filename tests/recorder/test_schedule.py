"""When the station daemon first runs the daily self-test (recorder/schedule.py), in local time: the latest
set time passed since the last run is caught up at once, whatever the gap; a fresh station waits for its
set time; a run already made after the set time waits for the next day."""

from __future__ import annotations

import datetime as dt

from recorder.schedule import first_due, next_occurrence, previous_occurrence

AT = dt.time(2, 30)


def local(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2027, 1, day, hour, minute).timestamp()


def test_occurrences_around_a_moment() -> None:
    assert previous_occurrence(local(15, 9), AT) == local(15, 2, 30)
    assert previous_occurrence(local(15, 2, 30), AT) == local(15, 2, 30)
    assert previous_occurrence(local(15, 1), AT) == local(14, 2, 30)
    assert next_occurrence(local(15, 2, 30), AT) == local(16, 2, 30)


def test_a_set_time_missed_while_the_station_was_off_is_caught_up_at_start() -> None:
    # Last run yesterday at 10:00 (itself caught up late); off at 02:30 today; started at 09:00: run now,
    # not tomorrow (a 23 h gap would otherwise leave the room without a self-test for 41 h).
    assert first_due(local(15, 9), AT, last_run_s=local(14, 10)) == local(15, 9)


def test_a_set_time_moved_just_past_a_late_start_is_caught_up() -> None:
    at = dt.time(11, 0)
    assert first_due(local(15, 11, 1), at, last_run_s=local(15, 10, 59)) == local(15, 11, 1)


def test_a_run_made_after_the_set_time_waits_for_the_next_day() -> None:
    assert first_due(local(15, 9), AT, last_run_s=local(15, 2, 31)) == local(16, 2, 30)


def test_a_fresh_station_waits_for_its_set_time() -> None:
    assert first_due(local(15, 1), AT, last_run_s=None) == local(15, 2, 30)
    assert first_due(local(15, 9), AT, last_run_s=None) == local(16, 2, 30)
