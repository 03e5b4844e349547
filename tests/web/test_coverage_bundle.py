"""Coverage as evidence (issue 18): a bundle exported from the demo country recomputes offline, with the real
`irms-verify coverage`, to the dashboard's figure; tampering is refused, heartbeat by heartbeat or as a whole."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from evidence import keys as K
from evidence.canonical import canonical_json
from evidence.coverage_bundle import sign_heartbeat
from tests.web.conftest import FakeNow, World, beat, login
from web.app import create_app
from web.cli import main as web_main
from web.config import WebConfig
from web.db import Database
from web.demo import PROVINCES, heartbeat_body, heartbeat_doc, seed, simulate, stations_with_keys
from web.evidence import policy_of, snapshot, trend
from web.models import Heartbeat

BIN = Path(sys.executable).parent


def verify(bundle: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([str(BIN / "irms-verify"), "coverage", str(bundle), "--json", *extra],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}, proc.stderr


@pytest.fixture
def demo_bundle(config: WebConfig, db: Database, tmp_path: Path, live_server: Callable[[Flask], str],
                monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The demo country (three provinces, no invented history) after three rounds of signed heartbeats through
    the real server, exported for yesterday and today with `irms-web coverage export`."""
    keys = tmp_path / "keys"
    with db.session() as s:
        seed(s, now_us=time.time_ns() // 1000, policy=policy_of(config), keys_dir=keys, provinces=PROVINCES[:3],
             with_history=False)
    audit_key = tmp_path / "audit-signing.key"
    monkeypatch.setenv("IRMS_WEB_AUDIT_KEY_PATH", str(audit_key))
    url = live_server(create_app(config.model_copy(update={"audit_key_path": str(audit_key)})))
    with db.session() as s:
        stations = stations_with_keys(s, keys)
    simulate(url, stations, interval_s=0, rounds=3, log=False)
    today = dt.datetime.now(ZoneInfo(config.timezone)).date()
    out = tmp_path / "bundle"
    assert web_main(["--database", config.database_url, "coverage", "export", "--from",
                     str(today - dt.timedelta(days=1)), "--to", str(today), "--out", str(out)]) == 0
    return out, audit_key


def test_demo_bundle_recomputes_to_the_dashboards_figure(demo_bundle: tuple[Path, Path], config: WebConfig,
                                                         db: Database) -> None:
    bundle, _ = demo_bundle
    rc, res, err = verify(bundle)
    assert rc == 0, (err, res.get("differences"))
    assert res["equal_to_server"] and res["differences"] == []
    lines = (bundle / "heartbeats.jsonl").read_bytes().splitlines()
    # Every heartbeat the stations sent verifies; the seeded rows (no signature kept) are refused, and say so.
    assert res["heartbeats_verified"] + res["heartbeats_refused"] == len(lines)
    assert set(res["refused"]) <= {"unsigned"} and res["heartbeats_verified"] > 20
    # The stations signed their runs: the bundle keeps the last heartbeat of each run (and the failing ones),
    # fewer than the server stored, and the runs are what the figure rests on.
    with db.session() as s:
        stored = s.scalar(select(func.count()).select_from(Heartbeat))
    assert len(lines) < stored and res["runs_credited"] >= 10 and res["runs_refused"] == {}
    # The dashboard's own trend, computed at the bundle's cut, gives the same days.
    cut = json.loads((bundle / "manifest.json").read_bytes())["cut_us"]
    with db.session() as s:
        tr = trend(s, snapshot(s), config, cut)
    dash = {p.day.isoformat(): p for p in tr.days}
    for day in res["figure"]["national"]["days"]:
        p = dash[day["day"]]
        assert float(day["room_uptime"]) == pytest.approx(p.room_uptime or 0, abs=1e-9)
        assert float(day["facility_equipped"]) == pytest.approx(p.facility_equipped or 0, abs=1e-9)
    assert float(res["figure"]["national"]["days"][-1]["room_uptime"]) > 0
    # The plain-text report names the figure and what it rests on.
    text = subprocess.run([str(BIN / "irms-verify"), "coverage", str(bundle)], capture_output=True, text=True,
                          timeout=300).stdout
    assert f"rests on {res['heartbeats_verified']} heartbeats from {res['stations']} stations verified" in text
    assert "equal to the server's figure" in text


def _lines(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (bundle / "heartbeats.jsonl").read_bytes().splitlines()]


def _write_lines(bundle: Path, lines: list[dict[str, Any]]) -> None:
    (bundle / "heartbeats.jsonl").write_bytes(b"".join(canonical_json(x) + b"\n" for x in lines))


def _resign(bundle: Path, audit_key: Path) -> None:
    """What a server holding its own key could do: sign a manifest over files it changed."""
    man = json.loads((bundle / "manifest.json").read_bytes())
    for name in man["files"]:
        data = (bundle / name).read_bytes()
        man["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    key = K.load_private_key(audit_key)
    assert isinstance(key, Ed25519PrivateKey)
    (bundle / "manifest.json").write_bytes(canonical_json(K.sign_document(man, key)))


def _signed(lines: list[dict[str, Any]]) -> list[int]:
    return [i for i, x in enumerate(lines) if x["signed"] is not None]


def test_an_edited_heartbeat_is_refused(demo_bundle: tuple[Path, Path]) -> None:
    bundle, audit_key = demo_bundle
    lines = _lines(bundle)
    i = _signed(lines)[0]
    body = json.loads(lines[i]["body"])
    body["probes"][0]["ok"] = not body["probes"][0]["ok"]
    lines[i]["body"] = json.dumps(body, separators=(",", ":"))
    _write_lines(bundle, lines)
    rc, _, err = verify(bundle)  # not signed again: the whole bundle is refused
    assert rc == 1 and "heartbeats.jsonl was changed after the manifest was signed" in err
    _resign(bundle, audit_key)  # signed again by the server: the station's signature still refuses it
    rc, res, _ = verify(bundle, "--strict")
    assert rc == 1 and res["refused"].get("bad_signature") == 1
    assert any("signature does not verify" in r for r in res["refusals"])


def test_a_heartbeat_signed_with_a_key_not_enrolled_is_refused(demo_bundle: tuple[Path, Path]) -> None:
    bundle, audit_key = demo_bundle
    lines = _lines(bundle)
    some = lines[_signed(lines)[0]]
    stranger = Ed25519PrivateKey.generate()
    now_us = some["received_us"]
    for sid in ("st-not-enrolled", some["station_id"]):  # an unknown station, and a known one's name
        body = heartbeat_body(sid, "working", now_us).decode()
        lines.append({"body": body, "received_us": now_us, "room_id": some["room_id"], "station_id": sid,
                      "signed": sign_heartbeat(stranger, sid, body.encode(), now_us // 1_000_000, "ab" * 16)})
    _write_lines(bundle, lines)
    _resign(bundle, audit_key)
    rc, res, _ = verify(bundle, "--strict")
    assert rc == 1
    assert res["refused"].get("key_not_enrolled") == 1 and res["refused"].get("bad_signature") == 1


def test_a_heartbeat_moved_to_another_room_is_refused(demo_bundle: tuple[Path, Path]) -> None:
    bundle, audit_key = demo_bundle
    lines = _lines(bundle)
    i = _signed(lines)[0]
    rooms = {x["room_id"] for x in lines}
    lines[i]["room_id"] = next(r for r in sorted(rooms) if r != lines[i]["room_id"])
    _write_lines(bundle, lines)
    _resign(bundle, audit_key)
    rc, res, _ = verify(bundle, "--strict")
    assert rc == 1 and res["refused"].get("wrong_room") == 1
    assert any("is enrolled for room" in r for r in res["refusals"])


def test_a_registry_edited_after_signing_is_refused(demo_bundle: tuple[Path, Path]) -> None:
    bundle, _ = demo_bundle
    reg = json.loads((bundle / "registry.json").read_bytes())
    reg["rooms"] = reg["rooms"][1:]  # one room fewer: the figure would rise
    (bundle / "registry.json").write_bytes(canonical_json(reg))
    rc, res, err = verify(bundle)
    assert rc == 1 and res == {}
    assert "registry.json was changed after the manifest was signed" in err


def test_dashboard_names_a_missing_failed_or_stale_selftest(world: World, client: FlaskClient,
                                                             now: FakeNow) -> None:
    """R19 required by default: past the grace after enrolment, a room without a passing self-test in 26 h
    is not working, and the dashboard says why in words."""
    world.user("u", "auditor")
    good, missing, stale = (world.enroll("HN-TTG", "P01"), world.enroll("HN-TTG", "P02"),
                            world.enroll("HN-CQDT", "P01"))
    code, ans = beat(client, missing, now())
    assert code == 201 and ans["ok"] is True  # within the grace period after enrolment
    now.advance(27 * 3600)
    hour = 3600 * 1_000_000
    assert beat(client, good, now(), selftest={"at_us": now() - hour, "ok": True})[1]["ok"] is True
    assert [r["code"] for r in beat(client, missing, now())[1]["reasons"]] == ["selftest_missing"]
    _, ans = beat(client, stale, now(), selftest={"at_us": now() - 27 * hour, "ok": True})
    assert ans["reasons"] == [{"code": "selftest_stale", "hours": "27"}]
    _, ans = beat(client, world.enroll("HN-TTG", "P01"), now(), selftest={"at_us": now() - hour, "ok": False})
    assert [r["code"] for r in ans["reasons"]] == ["selftest_failed"]
    assert login(client, "u") == 302
    page = client.get("/").get_data(as_text=True)
    assert "chưa có kết quả tự kiểm tra hằng ngày" in page
    assert "lần tự kiểm tra đạt gần nhất đã cách đây 27 giờ" in page


def test_run_claims_the_bundle_contradicts_are_refused(demo_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    """A station (its own key) claiming a run across its own failing heartbeat, or from before its enrolment:
    `irms-verify coverage` refuses both run claims with their codes, and the heartbeats credit nothing."""
    bundle, audit_key = demo_bundle
    lines = _lines(bundle)
    signed = [x for x in lines if x["signed"] is not None]
    failing = next(x for x in signed if json.loads(x["body"])["run"]["count"] == 0)
    ok = next(x for x in signed if json.loads(x["body"])["run"]["count"] >= 1)
    enrolled = {s["station_id"]: s["enrolled_at_us"]
                for s in json.loads((bundle / "stations.json").read_bytes())["stations"]}
    before = len(lines)
    for n, (line, since, count) in enumerate([
            (failing, json.loads(failing["body"])["sent_at_us"] - 1_000_000, 3),  # across its failing heartbeat
            (ok, enrolled[ok["station_id"]] - 1_000_000, 10**9)]):  # before its enrolment
        sid = line["station_id"]
        at = json.loads(line["body"])["sent_at_us"] + 1_000_000
        run = {**json.loads(ok["body"])["run"], "since_us": since, "count": count}
        raw = json.dumps({**heartbeat_doc(sid, "working", at), "run": run}, separators=(",", ":")).encode()
        key = Ed25519PrivateKey.from_private_bytes((tmp_path / "keys" / f"{sid}.key").read_bytes())
        lines.append({"body": raw.decode(), "received_us": at, "room_id": line["room_id"], "station_id": sid,
                      "signed": sign_heartbeat(key, sid, raw, at // 1_000_000, f"{n:032x}")})
    _write_lines(bundle, lines)
    _resign(bundle, audit_key)
    rc, res, _ = verify(bundle, "--strict")
    assert rc == 1 and res["heartbeats_verified"] + res["heartbeats_refused"] == before + 2
    assert res["runs_refused"] == {"run_contradicted": 1, "run_before_enrolment": 1}
    assert any("run refused (run_contradicted)" in r for r in res["refusals"])
    rc, res, _ = verify(bundle)  # not strict: the figure stands, as the server computed it (it credited neither)
    assert rc == 0 and res["equal_to_server"]
