"""Heartbeat group commit: batches of concurrent heartbeats, on SQLite and PostgreSQL.

The span rule applied a batch at a time must give what replaying the history gives; concurrent
requests must each get their own answer (a duplicate nonce in the same batch too); a batch the
database refuses must answer every request in it with 503 and keep nothing.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text

from evidence.errors import IrmsError
from tests.web.conftest import SimStation, World
from web.coverage import Policy, RunState, facts_from_doc, judge_heartbeat, next_run, run_credit
from web.db import Database
from web.errors import DatabaseError
from web.heartbeat.body import HeartbeatBody
from web.heartbeat.ingest import HeartbeatIngest
from web.heartbeat.pending import Pending
from web.heartbeat.plan import NewSpan, StationRow, plan_batch
from web.models import Heartbeat, Nonce, Station, UptimeSpan, WitnessedHead

POLICY = Policy(interval_s=60, clock_tolerance_s=2, min_disk_free_bytes=0, required_probe_kinds=())
PATH = "/api/v1/heartbeat"


def station_history(times: list[tuple[int, bool]]) -> list[Pending]:
    """A station's heartbeats in time order, each with the run the station's own rule builds."""
    state: RunState | None = None
    out = []
    for at_us, ok in times:
        doc: dict[str, Any] = {"format": "irms.heartbeat/1", "station_id": "st", "sent_at_us": at_us,
                               "probes": [{"check": "camera.black", "device": "wide", "ok": ok}],
                               "disk_free_bytes": 1, "clock_offset_ms": 0, "selftest": {"at_us": at_us, "ok": True}}
        run = next_run(state, doc, POLICY, 0)
        doc["run"] = run.as_json()
        raw = json.dumps(doc)
        state = (state or RunState()).after(run, at_us, raw.encode())
        facts = facts_from_doc(doc, at_us, 0)
        reasons = [r.as_json() for r in judge_heartbeat(facts, POLICY)]
        out.append(Pending(1, "st", f"{at_us:032x}", at_us, at_us, HeartbeatBody.model_validate(doc), raw, reasons,
                           None, facts))
    return out


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_spans_in_batches_equal_the_checkers_credits(seed: int) -> None:
    """The server's spans, a batch at a time and some heartbeats delivered late, cover exactly what the offline
    checker credits from the same heartbeats (`run_credit`, one rule)."""
    rng = random.Random(seed)
    t = 1_800_000_000_000_000
    times: list[tuple[int, bool]] = []
    for _ in range(rng.randint(1, 40)):
        t += rng.choice((10, 60, 60, 60, 119, 121, 300)) * 1_000_000
        times.append((t, rng.random() < 0.8))
    history = station_history(times)
    arrival = list(history)
    for _ in range(rng.randint(0, 3)):  # a few queued and delivered late
        i = rng.randrange(len(arrival))
        arrival.append(arrival.pop(i))
    stored: dict[int, NewSpan] = {}
    row = StationRow(1, "enrolled", 7, None, None, None, None, None)
    i = 0
    while i < len(arrival):
        n = rng.randint(1, 6)
        plan = plan_batch(arrival[i:i + n], {1: row}, POLICY)
        new_ids = []
        for span in plan.spans:
            new_ids.append(len(stored) + 1)
            stored[new_ids[-1]] = span
        for span_id, (end, closed) in plan.span_updates.items():
            stored[span_id].end_us, stored[span_id].closed = end, closed
        if isinstance(row.last_span, tuple):
            row.last_span = new_ids[row.last_span[1]]
        row.last_heartbeat = None
        i += n
    fails = sorted(p.at_us for p in history if p.reasons)
    credits = [run_credit(p.facts, not p.reasons, POLICY, 0, fails) for p in history if p.facts is not None]
    assert all(c.refused is None for c in credits)
    assert merged([(s.start_us, s.end_us) for s in stored.values()]) == merged([c.span for c in credits if c.span])
    assert [p.run_since_us for p in history] == [c.span[0] if c.span else None for c in credits]


def test_a_heartbeat_arriving_late_keeps_its_own_run() -> None:
    t, s = 1_800_000_000_000_000, 1_000_000
    h = station_history([(t, True), (t + 30 * s, True), (t + 60 * s, False), (t + 90 * s, True), (t + 120 * s, True),
                         (t + 180 * s, True)])
    row = StationRow(1, "enrolled", 7, None, None, None, None, None)
    plan = plan_batch([h[3], h[4], h[1], h[2], h[5], h[0]], {1: row}, POLICY)
    # h[1] credits [t, t+30 s) of the first run, a closed span of its own; the late failure h[2] does not close
    # the open span of the second run, which h[5] extends.
    assert [(sp.start_us, sp.end_us, sp.closed) for sp in plan.spans] == [
        (t + 90 * s, t + 180 * s, False), (t, t + 30 * s, True)]
    assert (row.span_start_us, row.span_end_us, row.last_span) == (t + 90 * s, t + 180 * s, ("new", 0))
    assert row.last_seen_us == t + 180 * s and row.last_heartbeat == ("new", 4)
    assert row.last_fail_us == t + 60 * s


def _request(st: SimStation, now_us: int, **over: object) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(st.body(now_us, **over)).encode()
    return {**st.headers(raw, now_us), "Content-Type": "application/json"}, raw


def _send(ingest: HeartbeatIngest, request: tuple[dict[str, str], bytes], now_us: int) -> Any:
    try:
        return ingest.ingest(request[0], PATH, request[1], now_us)
    except IrmsError as err:
        return err


def _in_one_batch(ingest: HeartbeatIngest, primer: tuple[dict[str, str], bytes],
                  requests: list[tuple[dict[str, str], bytes]], now_us: int) -> tuple[Any, list[Any]]:
    """Send `primer`, hold its batch while being written, send `requests` (each from its own thread) so
    that they queue behind it, then let it go: they are written as the next batch."""
    commit = ingest.commit
    write = commit._write
    writing, go = threading.Event(), threading.Event()

    def held(batch: list[Pending]) -> None:
        if not writing.is_set():
            writing.set()
            go.wait(30)
        write(batch)

    submit = commit.submit
    arrived = []

    def counted(item: Pending) -> None:
        arrived.append(item)
        submit(item)

    commit._write = held  # type: ignore[method-assign]
    commit.submit = counted  # type: ignore[method-assign]
    results: list[Any] = [None] * (len(requests) + 1)

    def send(i: int, request: tuple[dict[str, str], bytes]) -> None:
        results[i] = _send(ingest, request, now_us)

    threads = [threading.Thread(target=send, args=(0, primer))]
    threads[0].start()
    assert writing.wait(30)
    for i, request in enumerate(requests, 1):
        threads.append(threading.Thread(target=send, args=(i, request)))
        threads[-1].start()
    deadline = time.monotonic() + 30
    while len(arrived) < len(requests) + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # from arriving to queued is a few statements
    go.set()
    for th in threads:
        th.join(30)
    commit._write = write  # type: ignore[method-assign]
    commit.submit = submit  # type: ignore[method-assign]
    return results[0], results[1:]


def test_concurrent_heartbeats_share_commits_and_each_gets_its_answer(
        world: World, app: Flask, db: Database) -> None:
    stations = [world.enroll("HN-TTG", "P01"), world.enroll("HN-TTG", "P02"), world.enroll("HN-CQDT", "P01")]
    ingest: HeartbeatIngest = app.extensions["irms"].heartbeats
    world.now.advance(10)  # the runs start after the enrolment
    now = world.now()
    # Built oldest first (each station's run grows), sent newest first.
    requests = [_request(st, now - k * 1_000_000, recording={"session_id": f"S-{st.station_id}", "index": k,
                                                             "chain_head": f"{k:064x}"})
                for k in range(7, -1, -1) for st in stations][::-1]
    replayed = requests[5]
    requests.append(replayed)  # the same signed request twice: one is stored, the other refused
    primer, results = _in_one_batch(ingest, requests[0], requests[1:], now)
    results.insert(0, primer)

    refused = [r for r in results if isinstance(r, IrmsError)]
    assert [type(r).__name__ for r in refused] == ["Conflict"] and "replay" in str(refused[0])
    ids = [r.heartbeat_id for r in results if not isinstance(r, IrmsError)]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert ingest.commit.stats.heartbeats == len(requests)
    assert ingest.commit.stats.largest == len(requests) - 1  # all but the primer, in one batch
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 24
        assert s.scalar(select(func.count()).select_from(WitnessedHead)) == 24
        assert s.scalar(select(func.count()).select_from(Nonce)) == 24
        for st in stations:
            row = s.scalars(select(Station).where(Station.station_id == st.station_id)).one()
            newest = s.scalar(select(func.max(Heartbeat.sent_us)).where(Heartbeat.station_pk == row.id))
            assert row.last_seen_us == newest == now
            assert s.get(Heartbeat, row.last_heartbeat_id).sent_us == now  # type: ignore[union-attr]
            spans = s.execute(select(UptimeSpan.start_us, UptimeSpan.end_us, UptimeSpan.closed)
                              .where(UptimeSpan.station_pk == row.id)).all()
            # arrival order is not time order here: late ones are closed spans of their own; one span is
            # open, it covers the newest heartbeat, and the row points at it
            assert [(a, b) for a, b, closed in spans if not closed] == [(row.span_start_us, row.span_end_us)]
            assert row.span_start_us <= now <= row.span_end_us


def test_revoked_and_unknown_in_one_batch_with_accepted_ones(world: World, app: Flask, db: Database) -> None:
    good, gone = world.enroll("HN-TTG", "P01"), world.enroll("HN-TTG", "P02")
    ingest: HeartbeatIngest = app.extensions["irms"].heartbeats
    now = world.now()
    requests = [_request(good, now), _request(gone, now)]
    ingest.station_key(gone.station_id)  # key known to this process before the revocation
    with db.session() as s:
        s.execute(text("UPDATE stations SET status = 'revoked' WHERE station_id = :sid"), {"sid": gone.station_id})
    primer, results = _in_one_batch(ingest, _request(good, now - 1_000_000), requests, now)
    assert not isinstance(primer, IrmsError) and not isinstance(results[0], IrmsError)
    assert type(results[1]).__name__ == "Forbidden" and "revoked" in str(results[1])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 2
        assert s.scalar(select(func.count()).select_from(Nonce)) == 2


def _refuse_bodies_with(db: Database, marker: str) -> None:
    """A trigger that makes the database refuse any heartbeat whose body contains `marker`."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text(f"""CREATE OR REPLACE FUNCTION test_refuse_hb() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN IF NEW.body LIKE '%{marker}%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                RETURN NEW; END $$"""))
            conn.execute(text("CREATE TRIGGER test_refuse_hb BEFORE INSERT ON heartbeats "
                              "FOR EACH ROW EXECUTE FUNCTION test_refuse_hb()"))
        else:
            conn.execute(text(f"CREATE TRIGGER test_refuse_hb BEFORE INSERT ON heartbeats "
                              f"WHEN NEW.body LIKE '%{marker}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"))


def _drop_refusal(db: Database) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS test_refuse_hb" + (" ON heartbeats" if db.dialect == "postgresql"
                                                                      else "")))


def test_a_failed_batch_answers_503_to_every_request_in_it_and_keeps_nothing(
        world: World, app: Flask, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    a, b = world.enroll("HN-TTG", "P01"), world.enroll("HN-TTG", "P02")
    ingest: HeartbeatIngest = app.extensions["irms"].heartbeats
    _refuse_bodies_with(db, "BROKEN-AGENT")
    world.now.advance(10)
    try:
        now = world.now()
        primer, results = _in_one_batch(ingest, _request(a, now - 1_000_000),
                                        [_request(a, now), _request(b, now, versions={"agent": "BROKEN-AGENT"})], now)
        assert not isinstance(primer, IrmsError)
        assert [type(r) for r in results] == [DatabaseError, DatabaseError]
        assert all(r.http_status == 503 for r in results)
        assert "heartbeat batch of 2 not stored" in caplog.text
        with db.session() as s:  # only the primer, in its own batch
            assert s.scalar(select(func.count()).select_from(Heartbeat)) == 1
            assert s.scalar(select(func.count()).select_from(Nonce)) == 1
            assert s.scalar(select(func.count()).select_from(UptimeSpan)) == 1  # its run's, of no length yet
        # the station retries with a new request; the next batch is stored
        headers, raw = _request(a, now + 1_000_000)
        got = ingest.ingest(headers, PATH, raw, now + 1_000_000)
        assert got.heartbeat_id > 0
    finally:
        _drop_refusal(db)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 2
        # The retry continues the primer's run (the station built the lost one too: its run counts it).
        assert s.execute(select(UptimeSpan.start_us, UptimeSpan.end_us)).all() == [(now - 1_000_000,
                                                                                    now + 1_000_000)]


def test_in_one_batch_the_first_station_to_name_a_session_owns_it_and_the_other_is_refused(
        world: World, app: Flask, db: Database) -> None:
    a, b = world.enroll("HN-TTG", "P01"), world.enroll("HN-TTG", "P02")
    ingest: HeartbeatIngest = app.extensions["irms"].heartbeats
    now = world.now()
    sid = "6f1c2b1e-0000-4000-8000-00000000b001"

    def head(st: SimStation, k: int, at: int) -> tuple[dict[str, str], bytes]:
        return _request(st, at, recording={"session_id": sid, "index": k, "chain_head": f"{k:064x}"})

    primer, results = _in_one_batch(ingest, _request(a, now - 2_000_000),
                                    [head(a, 0, now - 1_000_000), head(b, 0, now), head(a, 1, now)], now)
    assert not isinstance(primer, IrmsError) and not isinstance(results[0], IrmsError)
    assert type(results[1]).__name__ == "ForeignClaim" and results[1].http_status == 403
    assert f"belongs to station {a.station_id}" in str(results[1])
    assert not isinstance(results[2], IrmsError)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Heartbeat)) == 3
        assert s.scalar(select(func.count()).select_from(Nonce)) == 3
        pks = s.execute(select(WitnessedHead.station_pk)).scalars().all()
        owner_pk = s.scalars(select(Station.id).where(Station.station_id == a.station_id)).one()
        assert pks == [owner_pk, owner_pk]
        entries = s.execute(text("SELECT actor, target, detail FROM audit_log WHERE action = "
                                 "'station.foreign_session'")).all()
        assert [(e[0], e[1], json.loads(e[2])["chain_head"]) for e in entries] == [
            (f"station:{b.station_id}", sid, f"{0:064x}")]
    assert audit_verifies(db)
    # later batches too: the claim is kept
    later = head(b, 2, now + 1_000_000)
    with pytest.raises(IrmsError, match="belongs to station"):
        ingest.ingest(later[0], PATH, later[1], now + 1_000_000)


def audit_verifies(db: Database) -> bool:
    from web import audit
    with db.session() as s:
        return audit.verify(s).entries > 0
