"""Inputs that once gave HTTP 500 are refused with 400 and one clear line, and the class is closed: the
station API's JSON bodies and every page's query parameters and path values are fuzzed (Hypothesis),
asserting never a 5xx."""

from __future__ import annotations

import json
import string
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.routing import Rule

from tests.web.conftest import SimStation, World, login
from tests.web.test_serve_ingest import Served, count, post, served  # noqa: F401,F811 - `served` is a fixture
from web.models import Heartbeat

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# The values that break a store: integers past 64 bits, NUL in text, huge floats; then any JSON value.
nasty = st.sampled_from([10**30, -(10**30), 2**63, 2**63 - 1, -(2**63) - 1, 10**23, "\x00", "a\x00b", "\ud800x",
                         1e308, -0.0, "", "9" * 30, "é" * 70, True, [], {}])
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=40))
json_values = nasty | st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.text(max_size=10), c, max_size=4), max_leaves=8)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a value can be swapped: keys of objects, items of arrays, recursively."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _swap(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = json.loads(json.dumps(doc))
    at = copy
    try:
        for p in path[:-1]:
            at = at[p]
        at[path[-1]] = value
    except (KeyError, IndexError, TypeError):  # an earlier swap replaced the container: nothing to swap
        return doc
    return copy


def fuzzed_doc(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The valid document with one or two values (anywhere in it) swapped for anything, a key dropped or added:
    one wrong value at a time, so the rest of the document gets through to where that value is used."""
    paths = _paths(valid)

    def mutate(picks: list[tuple[tuple[Any, ...], Any]], extra: dict[str, Any], drop: set[str]) -> dict[str, Any]:
        doc: Any = valid
        for path, value in picks:
            doc = _swap(doc, path, value)
        return {**{k: v for k, v in doc.items() if k not in drop}, **extra}

    return st.builds(mutate, st.lists(st.tuples(st.sampled_from(paths), json_values), min_size=1, max_size=2),
                     st.dictionaries(st.text(max_size=8), json_values, max_size=1),
                     st.sets(st.sampled_from(sorted(valid)), max_size=1))


def post_signed(client: FlaskClient, station: SimStation, path: str, doc: Any, now_us: int) -> tuple[int, Any]:
    raw = json.dumps(doc).encode()
    resp = client.post(path, data=raw, headers={**station.headers(raw, now_us, path=path),
                                                "Content-Type": "application/json"})
    return resp.status_code, resp.get_json(silent=True)


def one_line(answer: Any) -> str:
    assert isinstance(answer, dict) and answer.get("message"), answer
    message = str(answer["message"])
    assert "\n" not in message and len(message) < 400, message
    return message


# --- the four cases of the issue ------------------------------------------------------------------------------


def test_heartbeat_with_a_huge_integer_is_400(world: World, client: FlaskClient) -> None:
    station = world.enroll("HN-TTG", "P01")
    status, answer = post_signed(client, station, "/api/v1/heartbeat", station.body(10**30), world.now())
    assert status == 400 and "sent_at_us" in one_line(answer)
    for field in ("disk_free_bytes", "clock_offset_ms"):
        status, answer = post_signed(client, station, "/api/v1/heartbeat",
                                     station.body(world.now(), **{field: 10**30}), world.now())
        assert status == 400 and field in one_line(answer)
    for bad in ("a\x00b", "\ud800"):  # text no database holds
        status, answer = post_signed(client, station, "/api/v1/heartbeat", station.body(world.now(), recording={
            "session_id": bad, "index": 0, "chain_head": "a" * 64}), world.now())
        assert status == 400 and "cannot be stored" in one_line(answer), answer
    status, answer = post_signed(client, station, "/api/v1/heartbeat", station.body(world.now()), world.now())
    assert status == 201, answer


@pytest.mark.postgres
def test_a_bad_heartbeat_does_not_fail_its_batch(served: Served) -> None:  # noqa: F811
    """On the served server's group commit: heartbeats sent together with a bad one are all stored."""
    results: dict[str, list[int]] = {"good": [], "bad": []}
    lock = threading.Lock()
    start = threading.Barrier(len(served.stations) * 2)

    def station_daemon(i: int, bad: bool) -> None:
        st = served.stations[i]
        start.wait()
        for _ in range(6):
            status, answer, _ = post(served.port, st, **({"sent_at_us": 10**30} if bad else {}))
            with lock:
                results["bad" if bad else "good"].append(status)
            if bad:
                assert "sent_at_us" in str(answer["message"])

    threads = [threading.Thread(target=station_daemon, args=(i, bad)) for i in range(len(served.stations))
               for bad in (False, True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results == {"good": [201] * 30, "bad": [400] * 30}
    assert count(served.db, Heartbeat) == 30


def test_event_with_a_huge_seq_is_400(world: World, client: FlaskClient) -> None:
    station = world.enroll("HN-TTG", "P01")
    event = {"seq": 10**23, "session_id": "6f1c2b1e-0000-4000-8000-00000000b001", "site": "HN-TTG", "room": "P01",
             "at_us": world.now(), "kind": "start", "detail": ""}
    doc = {"format": "irms.session-events/1", "station_id": station.station_id, "sent_at_us": world.now(),
           "events": [event]}
    status, answer = post_signed(client, station, "/api/v1/sessions/events", doc, world.now())
    assert status == 400 and "events.0.seq" in one_line(answer)
    status, answer = post_signed(client, station, "/api/v1/sessions/events",
                                 {**doc, "events": [{**event, "seq": 1}]}, world.now())
    assert status == 201, answer


def test_page_values_out_of_range_are_400(world: World, client: FlaskClient) -> None:
    world.user("p", "prosecutor")
    world.user("a", "admin")
    assert login(client, "p") == 302
    for path in ("/replay/S1/seg/99999999999999999999.ts", "/replay/S1/seg/0-99999999999999999999.ts",
                 "/sessions/?to=31/12/9999", "/sessions/?from=01/01/0001", "/sessions/?from=1/1/10000"):
        resp = client.get(path, headers={"Accept": "application/json"})
        assert resp.status_code == 400, (path, resp.status_code)
        one_line(resp.get_json())
    other = client.application.test_client()
    assert login(other, "a") == 302
    resp = other.get("/admin/audit?before=99999999999999999999999", headers={"Accept": "application/json"})
    assert resp.status_code == 400 and "before" in one_line(resp.get_json())


# --- the class, fuzzed ----------------------------------------------------------------------------------------


def test_fuzzed_heartbeats_never_5xx(world: World, client: FlaskClient) -> None:
    station = world.enroll("HN-TTG", "P01")
    valid = station.body(world.now(), recording={"session_id": "6f1c2b1e-0000-4000-8000-00000000c001",
                                                 "index": 0, "chain_head": "a" * 64},
                         selftest={"at_us": world.now(), "ok": True})
    valid["probes"] = [{"check": "camera.black", "device": "wide", "ok": True, "reason": "", "value": 1}]
    seen: set[int] = set()

    @FUZZ
    @given(doc=fuzzed_doc(valid))
    def run(doc: dict[str, Any]) -> None:
        world.now.advance(0.001)
        status, answer = post_signed(client, station, "/api/v1/heartbeat", doc, world.now())
        assert status < 500, (status, answer, doc)
        seen.add(status)
        if status >= 400:
            one_line(answer)

    run()
    assert {201, 400} <= seen, seen
    status, _ = post_signed(client, station, "/api/v1/heartbeat", station.body(world.now()), world.now())
    assert status == 201  # the station's heartbeats still go in


def test_fuzzed_events_and_enrolment_never_5xx(world: World, client: FlaskClient) -> None:
    station = world.enroll("HN-TTG", "P01")
    event = {"seq": 1, "session_id": "6f1c2b1e-0000-4000-8000-00000000d001", "site": "HN-TTG", "room": "P01",
             "at_us": world.now(), "kind": "start", "detail": "", "header": None}
    top_valid = {"format": "irms.session-events/1", "station_id": station.station_id, "sent_at_us": world.now()}
    status, answer = post_signed(client, station, "/api/v1/sessions/events", {**top_valid, "events": [event]},
                                 world.now())
    assert status == 201, answer
    seen: set[int] = set()

    @FUZZ
    @given(doc=fuzzed_doc({**top_valid, "events": [event]}))
    def run(doc: dict[str, Any]) -> None:
        world.now.advance(0.001)
        status, answer = post_signed(client, station, "/api/v1/sessions/events", doc, world.now())
        assert status < 500, (status, answer, doc)
        seen.add(status)

    run()
    assert {201, 400} <= seen, seen

    @FUZZ
    @given(doc=fuzzed_doc({"format": "irms.enroll/1", "code": "ABCD-EFGH-JKLM-NPQR", "public_key": "A" * 43 + "=",
                           "station_id": "st-fuzz", "room": "P01", "hardware_profile": "synthetic"}))
    def enrol(doc: dict[str, Any]) -> None:
        resp = client.post("/api/v1/enroll", data=json.dumps(doc), headers={"Content-Type": "application/json"})
        assert resp.status_code < 500, (resp.status_code, resp.get_json(silent=True), doc)

    enrol()


def _get_rules(app: Flask) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if "GET" in (r.methods or ()) and r.endpoint != "static"]


path_text = st.text(alphabet=string.ascii_letters + string.digits + "-._~%20é", min_size=1, max_size=30)
path_int = st.one_of(st.integers(min_value=0, max_value=10**30), st.sampled_from([0, 1, 2**31, 2**63, 10**20]))
query = st.dictionaries(st.sampled_from(["case", "suspect", "room", "from", "to", "before", "next", "q", "page",
                                         "days"]),
                        st.one_of(st.text(max_size=30), st.sampled_from(
                            ["31/12/9999", "01/01/0001", "29/02/2027", "9999-12-31", "0", "-1", str(10**30),
                             "\x00", "1e400", "nan"]), path_int.map(str)), max_size=4)


@pytest.mark.parametrize("role", ["prosecutor", "admin", "auditor"])
def test_fuzzed_page_parameters_never_5xx(world: World, app: Flask, role: str) -> None:
    world.user("u", role)
    client = app.test_client()
    assert login(client, "u") == 302
    rules = _get_rules(app)
    assert len(rules) > 10
    values = {"int": path_int, "default": path_text}

    @FUZZ
    @given(data=st.data(), params=query)
    def run(data: st.DataObject, params: dict[str, str]) -> None:
        rule = data.draw(st.sampled_from(rules))
        args = {a: data.draw(values["int"] if type(rule._converters[a]).__name__ == "IntegerConverter"
                             else values["default"]) for a in rule.arguments}
        path = app.url_map.bind("localhost").build(rule.endpoint, args, force_external=False)
        resp = client.get(path, query_string=params)
        assert resp.status_code < 500, (path, params, resp.status_code, resp.get_data(as_text=True)[:300])

    run()
