"""Known answers for the pure coverage function (web.coverage)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from web.coverage import (
    DAY_US,
    US,
    HeartbeatFacts,
    Policy,
    Probe,
    ProvinceIn,
    RoomIn,
    RunClaim,
    RunState,
    SiteIn,
    Span,
    StationIn,
    advance_span,
    compute_coverage,
    compute_trend,
    facts_from_doc,
    judge_heartbeat,
    next_run,
    run_credit,
)

NOW = 1_800_000_000 * US
P = Policy(interval_s=60, clock_tolerance_s=2, min_disk_free_bytes=5 * 2**30)
GOOD = (Probe("camera.black", "wide", True), Probe("mic.level", "room", True))
TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def hb(age_s: float = 10, probes: tuple[Probe, ...] = GOOD, disk: int | None = 100 * 2**30,
       clock_ms: int | None = 20, store_ok: bool | None = True, selftest_age_s: int | None = 3600,
       selftest_ok: bool = True) -> HeartbeatFacts:
    """A heartbeat `age_s` old; by default its station's daily self-test passed an hour before it."""
    t = NOW - int(age_s * US)
    st_at = None if selftest_age_s is None else t - selftest_age_s * US
    return HeartbeatFacts(t, t, probes, disk, clock_ms, store_ok, st_at, selftest_ok if st_at else None)


PROVINCES = [ProvinceIn("A", "Province A"), ProvinceIn("B", "Province B")]
SITES = [SiteIn(1, "A-1", "Site A1", "A", "detention_centre"), SiteIn(2, "A-2", "Site A2", "A", "procuracy"),
         SiteIn(3, "B-1", "Site B1 (no rooms)", "B", "temporary_detention")]
ROOMS = [RoomIn(10, 1, "P01", "Room 1"), RoomIn(11, 1, "P02", "Room 2"), RoomIn(20, 2, "P01", "Room 1")]


def codes(status_reasons: tuple[object, ...]) -> list[str]:
    return [r.code for r in status_reasons]  # type: ignore[attr-defined]


def test_all_working() -> None:
    stations = [StationIn("s10", 10), StationIn("s11", 11), StationIn("s20", 20)]
    latest = {"s10": hb(), "s11": hb(), "s20": hb()}
    cov = compute_coverage(PROVINCES, SITES, ROOMS, stations, latest, NOW, P)
    assert (cov.figures.facilities_equipped, cov.figures.facilities_total) == (2, 3)
    assert (cov.figures.rooms_working, cov.figures.rooms_total) == (3, 3)
    assert cov.figures.facility_ratio == 2 / 3
    a, b = cov.provinces
    assert (a.figures.facilities_equipped, a.figures.facilities_total, a.figures.rooms_total) == (2, 2, 3)
    assert (b.figures.facilities_equipped, b.figures.facilities_total, b.figures.rooms_total) == (0, 1, 0)
    assert b.figures.room_ratio is None  # no rooms: no ratio, not 0 % and not a division by zero
    assert cov.failing == ()
    assert cov.silent_stations == ()


def test_site_with_no_rooms_is_a_facility_not_equipped() -> None:
    cov = compute_coverage(PROVINCES, SITES[2:], [], [], {}, NOW, P)
    assert cov.figures.facilities_total == 1 and cov.figures.facilities_equipped == 0
    assert cov.figures.rooms_total == 0 and cov.figures.room_ratio is None
    assert cov.sites[0].equipped is False


def test_empty_country() -> None:
    cov = compute_coverage([], [], [], [], {}, NOW, P)
    assert cov.figures.facility_ratio is None and cov.figures.room_ratio is None


def test_one_working_room_equips_the_facility() -> None:
    stations = [StationIn("s10", 10), StationIn("s11", 11)]
    latest = {"s10": hb(), "s11": hb(age_s=1000)}
    cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:2], stations, latest, NOW, P)
    assert cov.figures.facilities_equipped == 1 and cov.figures.rooms_working == 1
    (failing,) = cov.failing
    assert failing.room.code == "P02" and codes(failing.reasons) == ["silent"]
    assert failing.reasons[0].param("minutes") == "16"
    assert cov.silent_stations == ("s11",)


def test_revoked_station() -> None:
    cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:1], [StationIn("s10", 10, revoked=True)],
                           {"s10": hb()}, NOW, P)
    assert cov.figures.rooms_working == 0
    assert codes(cov.failing[0].reasons) == ["station_revoked"]
    assert cov.silent_stations == ()  # a revoked station is not expected to report


def test_replacement_station_counts_and_revoked_one_does_not() -> None:
    stations = [StationIn("old", 10, revoked=True), StationIn("new", 10)]
    cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:1], stations, {"new": hb()}, NOW, P)
    assert cov.figures.rooms_working == 1


def test_no_station_and_never_reported() -> None:
    cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:2], [StationIn("s11", 11)], {}, NOW, P)
    reasons = {r.room.code: codes(r.reasons) for r in cov.failing}
    assert reasons == {"P01": ["no_station"], "P02": ["never_reported"]}
    assert cov.silent_stations == ("s11",)


def test_freshness_boundary_is_two_intervals() -> None:
    for age, working in ((120, True), (120.000001, False), (0, True)):
        cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:1], [StationIn("s", 10)], {"s": hb(age)}, NOW, P)
        assert cov.figures.rooms_working == int(working), age


def test_clock_far_off_and_at_tolerance() -> None:
    assert codes(tuple(judge_heartbeat(hb(clock_ms=2000), P))) == []
    assert codes(tuple(judge_heartbeat(hb(clock_ms=-2000), P))) == []
    (r,) = judge_heartbeat(hb(clock_ms=-3_600_000), P)
    assert r.code == "clock_off" and r.param("offset_s") == "-3600.0"
    assert codes(tuple(judge_heartbeat(hb(clock_ms=None), P))) == ["clock_unknown"]


def test_future_timestamp_counts_as_received_time() -> None:
    # A station clock an hour ahead cannot make an old heartbeat look fresh.
    t = NOW - 1000 * US
    facts = HeartbeatFacts(sent_us=t + 3600 * US, received_us=t, probes=GOOD, disk_free_bytes=100 * 2**30,
                           clock_offset_ms=0, store_ok=True, selftest_at_us=t - 3600 * US, selftest_ok=True)
    cov = compute_coverage(PROVINCES, SITES[:1], ROOMS[:1], [StationIn("s", 10)], {"s": facts}, NOW, P)
    assert codes(cov.failing[0].reasons) == ["silent"]


def test_probe_failures_disk_store_and_missing_kinds() -> None:
    probes = (Probe("camera.black", "wide", False, "the picture is black"), Probe("mic.level", "room", True))
    reasons = judge_heartbeat(hb(probes=probes, disk=2**30, store_ok=False), P)
    assert codes(tuple(reasons)) == ["probe_failed", "store_unreachable", "disk_low"]
    assert reasons[0].param("detail") == "the picture is black"
    assert reasons[2].param("free_gib") == "1.0"
    assert codes(tuple(judge_heartbeat(hb(probes=()), P))) == ["probe_missing", "probe_missing"]
    assert codes(tuple(judge_heartbeat(hb(disk=None), P))) == ["disk_unknown"]
    # a second camera passing does not hide the failing one
    two = (*probes, Probe("camera.black", "close", True))
    assert codes(tuple(judge_heartbeat(hb(probes=two), P))) == ["probe_failed"]


def test_span_rule() -> None:
    """The server's open span follows the credits: the same run extends it, a later run opens another (closing
    the open one), an earlier run's late heartbeat is a span of its own, a failing heartbeat closes it."""
    assert advance_span(None, (100, 200), True, 200).action == "open"
    assert advance_span((100, 300), (100, 250), True, 250).end_us == 300  # a late one of the same run
    assert advance_span((100, 200), (100, 300), True, 300).end_us == 300
    assert advance_span((100, 200), (400, 500), True, 500).action == "open"
    assert advance_span((100, 200), (10, 50), True, 50).action == "past"
    assert advance_span((100, 200), None, False, 250).action == "close"
    assert advance_span((100, 200), None, False, 50).action == "none"  # a failure delivered late
    assert advance_span(None, None, False, 50).action == "none"
    assert advance_span((100, 200), None, True, 250).action == "none"


def doc(t: int, cam_ok: bool = True, disk: int = 100 * 2**30, selftest_at: int | None = None) -> dict[str, object]:
    return {"format": "irms.heartbeat/1", "station_id": "st", "sent_at_us": t,
            "probes": [{"check": "camera.black", "device": "wide", "ok": cam_ok},
                       {"check": "mic.level", "device": "room", "ok": True}],
            "disk_free_bytes": disk, "clock_offset_ms": -700, "store_ok": True,
            "selftest": {"at_us": t - 3600 * US if selftest_at is None else selftest_at, "ok": True}}


def station(beats: list[dict[str, object]], policy: Policy = P, enrolled: int | None = 0) -> list[RunClaim]:
    state: RunState | None = None
    out = []
    for d in beats:
        run = next_run(state, d, policy, enrolled)
        state = (state or RunState()).after(run, int(d["sent_at_us"]), repr(d).encode())  # type: ignore
        out.append(run)
    return out


def test_the_station_builds_its_runs() -> None:
    m = 60 * US
    runs = station([doc(NOW), doc(NOW + m, disk=6 * 2**30), doc(NOW + 2 * m, cam_ok=False), doc(NOW + 3 * m),
                    doc(NOW + 4 * m, selftest_at=NOW + 3 * m), doc(NOW + 7 * m)])
    assert [(r.since_us, r.count) for r in runs] == [
        (NOW, 1), (NOW, 2), (None, 0), (NOW + 3 * m, 1), (NOW + 3 * m, 2), (NOW + 7 * m, 1)]  # 180 s gap: new
    assert runs[0].prev is None and all(r.prev is not None for r in runs[1:])
    assert runs[1].min_disk_free_bytes == 6 * 2**30 and runs[1].max_clock_offset_ms == 700
    assert runs[1].kinds == ("camera", "mic")
    assert runs[4].selftests == ((NOW + 3 * m - 3600 * US, True), (NOW + 3 * m, True))
    assert runs[4].selftest_age_max_us == 3600 * US
    # A heartbeat the policy finds failing is in no run.
    stricter = Policy(interval_s=60, min_disk_free_bytes=7 * 2**30)
    runs = station([doc(NOW), doc(NOW + m, disk=6 * 2**30)], stricter)
    assert [(r.since_us, r.count) for r in runs] == [(NOW, 1), (None, 0)]
    # A run the policy, become stricter, would fail (its least free disk) ends: the next ok heartbeat starts one.
    first = next_run(None, doc(NOW, disk=6 * 2**30), P, 0)
    state = RunState(NOW, "0" * 64, first)
    assert next_run(state, doc(NOW + m, disk=8 * 2**30), P, 0).since_us == NOW
    assert (next_run(state, doc(NOW + m, disk=8 * 2**30), stricter, 0).since_us,
            next_run(state, doc(NOW + m, disk=8 * 2**30), stricter, 0).count) == (NOW + m, 1)


def credit_of(d: dict[str, object], run: RunClaim, received: int | None = None, **kw: object) -> object:
    facts = facts_from_doc({**d, "run": run.as_json()}, received or int(d["sent_at_us"]))  # type: ignore
    return run_credit(facts, not judge_heartbeat(facts._replace(enrolled_at_us=0), P), P, 0, **kw)  # type: ignore


def test_a_heartbeat_credits_the_run_behind_it_or_its_refusal() -> None:
    m = 60 * US
    beats = [doc(NOW + i * m) for i in range(4)]
    runs = station(beats)
    assert credit_of(beats[3], runs[3]).span == (NOW, NOW + 3 * m)  # type: ignore[attr-defined]
    assert credit_of(beats[0], runs[0]).span == (NOW, NOW)  # a run of one heartbeat: no time behind it yet
    long = dataclasses.replace(runs[3], since_us=NOW - 10 * m)
    assert credit_of(beats[3], long).refused == "run_too_long"  # type: ignore[attr-defined]
    early = dataclasses.replace(runs[3], since_us=-1)
    assert credit_of(beats[3], early).refused == "run_before_enrolment"  # type: ignore[attr-defined]
    got = credit_of(beats[3], runs[3], failures=[NOW + m])
    assert got.refused == "run_contradicted"  # type: ignore[attr-defined]
    assert credit_of(beats[3], runs[3], failures=[NOW + 3 * m]).span == (NOW, NOW + 3 * m)  # type: ignore
    got = credit_of(beats[3], runs[3], failing_bodies={runs[3].prev})
    assert got.refused == "run_contradicted"  # type: ignore[attr-defined]
    lax = dataclasses.replace(runs[3], min_disk_free_bytes=2**30)
    got = credit_of(beats[3], lax)
    assert got.refused == "run_policy" and "run_disk_low" in got.why  # type: ignore[attr-defined]
    assert credit_of(doc(NOW + 3 * m, cam_ok=False), runs[3]).span is None  # not ok: no credit


def test_trend_daily_buckets() -> None:
    now = int(dt.datetime(2027, 1, 15, 12, 0, tzinfo=TZ).timestamp()) * US
    day0 = int(dt.datetime(2027, 1, 14, 0, 0, tzinfo=TZ).timestamp()) * US
    sites = SITES[:2]
    rooms = ROOMS
    spans = [
        Span(10, day0, day0 + DAY_US // 2),          # room 10: first half of yesterday
        Span(11, day0 + DAY_US // 4, day0 + DAY_US),  # room 11: last three quarters of yesterday
        Span(20, day0 - DAY_US, now + 10 * DAY_US),   # room 20: always (end beyond now is clipped)
    ]
    tr = compute_trend(sites, rooms, spans, now, days=3, tz=TZ)
    assert [p.day for p in tr.days] == [dt.date(2027, 1, 13), dt.date(2027, 1, 14), dt.date(2027, 1, 15)]
    d13, d14, d15 = tr.days
    assert d13.room_uptime == 1 / 3 and d13.facility_equipped == 0.5
    assert d14.room_uptime == (0.5 + 0.75 + 1) / 3
    assert d14.facility_equipped == 1.0  # site 1's rooms together cover the whole day
    assert d15.room_uptime == 1 / 3 and d15.facility_equipped == 0.5  # today counts up to now only
    window = now - int(dt.datetime(2027, 1, 13, tzinfo=TZ).timestamp()) * US
    assert tr.room_uptime[20] == 1.0
    assert abs(tr.room_uptime[10] - (DAY_US // 2) / window) < 1e-12
    assert tr.province_uptime["A"] is not None


def test_trend_with_no_rooms() -> None:
    tr = compute_trend(SITES[2:], [], [], NOW, days=2, tz=TZ)
    assert all(p.room_uptime is None and p.facility_equipped == 0.0 for p in tr.days)


def test_every_page_text_has_a_vietnamese_translation() -> None:
    import re
    from pathlib import Path

    from web import i18n
    texts = set()
    for tpl in (Path(i18n.__file__).parent / "templates").rglob("*.html"):
        texts |= set(re.findall(r"_\('([^']+)'\)", tpl.read_text()))
        texts |= set(re.findall(r'_\("([^"]+)"', tpl.read_text()))
    texts -= {"s.facility_type", "f", "st.status"}
    missing = sorted(t for t in texts if not i18n.is_translated(t, "vi"))
    assert not missing, missing
    for code in ("no_station", "station_revoked", "never_reported", "silent", "probe_failed", "probe_missing",
                 "store_unreachable", "disk_low", "disk_unknown", "clock_off", "clock_unknown",
                 "selftest_missing", "selftest_failed", "selftest_stale"):
        assert i18n.is_translated(code, "vi") and code in i18n.CODES, code
        assert i18n.translate(code, "en") != code and i18n.translate(code, "vi") != i18n.translate(code, "en")


def test_daily_selftest_is_required_by_default() -> None:
    """R19: a room works only with a passing self-test no older than 26 h, except in the grace period after
    its station's enrolment; each failure has its reason."""
    assert Policy().selftest_max_age_s == 26 * 3600
    ok = hb(selftest_age_s=25 * 3600)
    assert codes(tuple(judge_heartbeat(ok, P))) == []
    (r,) = judge_heartbeat(hb(selftest_age_s=27 * 3600), P)
    assert (r.code, r.param("hours")) == ("selftest_stale", "27")
    assert codes(tuple(judge_heartbeat(hb(selftest_ok=False), P))) == ["selftest_failed"]
    missing = hb(selftest_age_s=None)
    assert codes(tuple(judge_heartbeat(missing, P))) == ["selftest_missing"]
    # Grace: enrolled 10 h ago, no self-test yet, or one from before the enrolment: working. A failed one is not.
    young = missing._replace(enrolled_at_us=missing.at_us - 10 * 3600 * US)
    assert codes(tuple(judge_heartbeat(young, P))) == []
    assert codes(tuple(judge_heartbeat(young._replace(selftest_at_us=young.at_us - 40 * 3600 * US,
                                                     selftest_ok=True), P))) == []
    assert codes(tuple(judge_heartbeat(young._replace(selftest_at_us=young.at_us, selftest_ok=False), P))) == [
        "selftest_failed"]
    old = missing._replace(enrolled_at_us=missing.at_us - 27 * 3600 * US)
    assert codes(tuple(judge_heartbeat(old, P))) == ["selftest_missing"]
    # The requirement can be switched off (0) by the configured policy.
    assert codes(tuple(judge_heartbeat(missing, dataclasses.replace(P, selftest_max_age_s=0)))) == []


def test_room_without_selftest_in_26_hours_is_not_working_with_its_reason() -> None:
    stations = [StationIn("s10", 10), StationIn("s11", 11), StationIn("s20", 20)]
    latest = {"s10": hb(), "s11": hb(selftest_age_s=26 * 3600 + 60), "s20": hb(selftest_age_s=None)}
    cov = compute_coverage(PROVINCES, SITES, ROOMS, stations, latest, NOW, P)
    assert (cov.figures.rooms_working, cov.figures.rooms_total) == (1, 3)
    assert {r.room.id: codes(r.reasons) for r in cov.failing} == {11: ["selftest_stale"], 20: ["selftest_missing"]}
