"""Sessions on the server: sync from the store, verification cached, search, role refusals, annex, export,
custody (encrypted keys, rotation, key use audited), and session events from stations (signed, queued)."""

from __future__ import annotations

import gzip
import hashlib
import html
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from evidence.keys import save_public_key
from tests.web.conftest import CUSTODIAN_PASSPHRASE, PASSWORD, SessionsWorld, World, csrf_token, login
from web import custody
from web import recordings as R
from web.app import create_app
from web.config import WebConfig
from web.db import Database
from web.errors import CustodyError
from web.models import AuditEntry, CustodianKey, RecordingSession, SessionEvent

BIN = Path(sys.executable).parent


def content_routes(sid: str) -> list[str]:
    return [f"/sessions/{sid}/annex.pdf", "/exports/", f"/replay/{sid}", f"/replay/{sid}/index.m3u8",
            f"/replay/{sid}/seg/00000000.ts"]


def export_via_job(c: FlaskClient, sid: str, label: str, timeout_s: float = 120) -> tuple[int, dict[str, Any]]:
    """Ask for a sealed copy as the session page does, wait for its job to end; (job id, its progress JSON)."""
    import time
    resp = c.post(f"/sessions/{sid}/exports", data={"label": label, "csrf_token": csrf_token(c, f"/sessions/{sid}")})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    job_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    deadline = time.monotonic() + timeout_s
    while True:
        p = c.get(f"/exports/{job_id}.json").get_json()
        if p["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job_id, p
        time.sleep(0.2)


def view_routes(sid: str) -> list[str]:
    return ["/sessions/", f"/sessions/{sid}"]


def audit_actions(db: Database) -> list[tuple[str, str, str]]:
    with db.session() as s:
        return [(e.actor, e.action, e.target) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]


def as_role(app: Flask, role: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, role.replace("_", "-")) == 302
    return client


def test_sync_search_and_verified_session_page(sessions_world: SessionsWorld, app: Flask, db: Database) -> None:
    sw = sessions_world
    c = as_role(app, "prosecutor")
    page = c.get("/sessions/").get_data(as_text=True)
    assert sw.session_id in page and sw.other_session_id in page
    found = c.get("/sessions/?case=7/2026").get_data(as_text=True)
    assert sw.session_id in found and sw.other_session_id not in found
    assert sw.other_session_id in c.get("/sessions/?room=P102").get_data(as_text=True)
    assert sw.session_id not in c.get("/sessions/?room=HN-CA-01/P102").get_data(as_text=True)
    both = c.get("/sessions/?suspect=nguyễn văn").get_data(as_text=True)
    assert sw.session_id in both and sw.other_session_id in both
    with db.session() as s:
        started = s.scalars(select(RecordingSession.started_at_us)).first()
    assert started is not None
    import datetime as dt
    day = dt.datetime.fromtimestamp(started / 1e6, dt.timezone(dt.timedelta(hours=7))).date()
    assert sw.session_id in c.get(f"/sessions/?from={day.isoformat()}&to={day.isoformat()}").get_data(as_text=True)
    assert sw.session_id not in c.get("/sessions/?to=2020-01-01").get_data(as_text=True)

    resp = c.get(f"/sessions/{sw.session_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'data-status="verified"' in html and "đã kiểm chứng" in html
    assert '<rect class="tl-recorded"' in html and 'data-kind="start"' in html and 'data-kind="end"' in html
    assert "7/2026/HS" in html and "Nguyễn Văn A" in html and f"/replay/{sw.session_id}" in html
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sw.session_id)).one()
        assert row.verification == "verified" and row.segment_count and row.segment_count >= 4
        assert row.status == "ended" and len(row.manifest_sha256) == 64
        assert len(R.segments_of(s, row)) == row.segment_count
    assert ("prosecutor", "session.view", sw.session_id) in audit_actions(db)


@pytest.mark.parametrize("role", ["it_staff", "admin", "investigator"])
def test_content_and_session_pages_refused_for_other_roles(sessions_world: SessionsWorld, app: Flask,
                                                           db: Database, role: str) -> None:
    sid = sessions_world.session_id
    c = as_role(app, role)
    for path in view_routes(sid) + content_routes(sid):
        resp = c.get(path)
        assert resp.status_code == 403, (role, path, resp.status_code)
        assert b"7/2026/HS" not in resp.data and b"Nguy" not in resp.data
    actions = {a for _, a, _ in audit_actions(db)}
    assert not actions & {"session.view", "session.replay", "session.export", "session.annex", "custodian.key_use"}


def test_auditor_sees_verification_but_no_content(sessions_world: SessionsWorld, app: Flask, db: Database) -> None:
    sid = sessions_world.session_id
    c = as_role(app, "auditor")
    for path in view_routes(sid):
        assert c.get(path).status_code == 200, path
    assert b"/replay/" not in c.get(f"/sessions/{sid}").data
    for path in content_routes(sid):
        assert c.get(path).status_code == 403, path
    anon = app.test_client()
    for path in view_routes(sid) + content_routes(sid):
        assert anon.get(path).status_code in (302, 401), path


def test_playlist_and_decrypted_segments_key_use_audited_once(sessions_world: SessionsWorld, app: Flask,
                                                              db: Database) -> None:
    sw = sessions_world
    c = as_role(app, "prosecutor")
    page = c.get(f"/replay/{sw.session_id}")
    assert page.status_code == 200
    text = c.get(f"/replay/{sw.session_id}/index.m3u8").get_data(as_text=True)
    assert text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in text and "seg/00000000.ts" in text
    # The page carries the same playlist (the player asks for no playlist before the first segment), gzipped
    # when the browser takes it.
    carried = re.search(r'data-playlist="([^"]*)"', page.get_data(as_text=True))
    assert carried and html.unescape(carried.group(1)) == text
    prefix = json.loads((sw.store / "sessions" / f"{sw.session_id}.json").read_text())["prefix"]
    # Every segment is in the playlist once, the first alone, later ones grouped (seg/<first>-<last>.ts).
    uris = [line for line in text.splitlines() if line.startswith("seg/")]
    covered = []
    for uri in uris:
        first, _, last = uri[4:-3].partition("-")
        covered += range(int(first), int(last or first) + 1)
    assert covered == list(range(len(list((sw.store / prefix / "seg").glob("*.json"))))) and len(covered) >= 4
    assert len(uris) < len(covered)
    grouped = next(u for u in uris if "-" in u)
    first, last = (int(x) for x in grouped[4:-3].split("-"))
    resp = c.get(f"/replay/{sw.session_id}/{grouped}")
    assert resp.status_code == 200 and resp.mimetype == "video/mp2t"
    assert resp.data == b"".join(c.get(f"/replay/{sw.session_id}/seg/{i:08d}.ts").data for i in range(first, last + 1))
    assert c.get(f"/replay/{sw.session_id}/seg/00000000-00000009.ts").status_code == 404  # more than 5
    assert c.get(f"/replay/{sw.session_id}/seg/00000001-00000001.ts").status_code == 404
    gz = c.get(f"/replay/{sw.session_id}/index.m3u8", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip" and gzip.decompress(gz.data).decode() == text
    for i in range(3):
        resp = c.get(f"/replay/{sw.session_id}/seg/{i:08d}.ts")
        assert resp.status_code == 200 and resp.mimetype == "video/mp2t"
        assert "no-store" in resp.headers["Cache-Control"]
        record = json.loads((sw.store / prefix / "seg" / f"{i:08d}.json").read_text())
        assert hashlib.sha256(resp.data).hexdigest() == record["plain_sha256"] and resp.data[0] == 0x47
    acts = [a for a in audit_actions(db) if a[2] == sw.session_id]
    assert acts.count(("prosecutor", "session.replay", sw.session_id)) == 1
    assert acts.count(("prosecutor", "custodian.key_use", sw.session_id)) <= 1  # data key may be cached already
    with db.session() as s:
        uses = s.scalars(select(AuditEntry).where(AuditEntry.action == "custodian.key_use")).all()
    assert all(json.loads(u.detail)["purpose"] == "replay" for u in uses)
    assert c.get(f"/replay/{sw.session_id}/seg/99999999.ts").status_code == 404
    zipped = c.get(f"/replay/{sw.session_id}", headers={"Accept-Encoding": "gzip"})  # (a second opening, audited)
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.mimetype == "text/html"
    assert "Content-Security-Policy" in zipped.headers and "no-store" in zipped.headers["Cache-Control"]
    assert html.escape(text, quote=True) in gzip.decompress(zipped.data).decode()


def test_annex_and_two_sealed_copies_verify_offline(sessions_world: SessionsWorld, app: Flask, db: Database,
                                                    tmp_path: Path) -> None:
    sw = sessions_world
    c = as_role(app, "prosecutor")
    annex = c.get(f"/sessions/{sw.session_id}/annex.pdf")
    assert annex.status_code == 200 and annex.data.startswith(b"%PDF")
    folders = {}
    for label in ("case-file", "procuracy-file"):
        job_id, progress = export_via_job(c, sw.session_id, label)
        assert progress["state"] == "done" and progress["percent"] == 100, progress
        resp = c.get(f"/exports/{job_id}/download")
        assert resp.status_code == 200 and resp.mimetype == "application/zip", resp.data[:300]
        assert hashlib.sha256(resp.data).hexdigest() == progress["sha256"] and len(resp.data) == progress["size"]
        out = tmp_path / label
        zipfile.ZipFile(io.BytesIO(resp.data)).extractall(out)
        (folder,) = list(out.iterdir())
        folders[label] = folder
        assert json.loads((folder / "EXPORT.json").read_text())["label"] == label
    env = {"PATH": "/usr/bin:/bin", "IRMS_HOME": str(tmp_path / "nobody"), "IRMS_TRUST": str(tmp_path / "none")}
    ok = subprocess.run([str(BIN / "irms-verify"), "session", sw.session_id, "--store", str(folders["case-file"])],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout
    # a tampered copy fails, naming the rule
    copy = folders["procuracy-file"]
    seg = sorted(copy.rglob("seg/00000001.bin"))[0]
    data = bytearray(seg.read_bytes())
    data[100] ^= 0xFF
    seg.chmod(0o644)
    seg.write_bytes(bytes(data))
    bad = subprocess.run([str(BIN / "irms-verify"), "session", sw.session_id, "--store", str(copy)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "V06" in bad.stdout + bad.stderr
    actions = [(a, t) for _, a, t in audit_actions(db)]
    assert actions.count(("session.export", sw.session_id)) == 2 and ("session.annex", sw.session_id) in actions


def test_tampered_store_shows_failed_rule_and_refuses_the_segment(world: World, recorded: object, db: Database,
                                                                  app: Flask, store_copy: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  sessions_world: SessionsWorld) -> None:
    sw = sessions_world
    st = app.extensions["irms"]
    st.config = st.config.model_copy(update={"store_url": str(store_copy)})
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sw.session_id)).one()
        R.verify_now(s, R.store_of(st.config), row, world.now())  # verified, records cached
    seg = sorted(store_copy.rglob(f"{sw.session_id}/seg/00000002.bin"))[0]
    data = bytearray(seg.read_bytes())
    data[50] ^= 0x01
    seg.chmod(0o644)
    seg.write_bytes(bytes(data))
    c = as_role(app, "prosecutor")
    assert c.get(f"/replay/{sw.session_id}/seg/00000002.ts").status_code == 409
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sw.session_id)).one()
        R.verify_now(s, R.store_of(st.config), row, world.now())
    html = c.get(f"/sessions/{sw.session_id}").get_data(as_text=True)
    assert 'data-status="failed"' in html and "V06" in html
    assert 'id="export-case-file"' not in html  # no sealed copy of a session that fails
    assert c.post(f"/sessions/{sw.session_id}/exports", data={
        "label": "case-file", "csrf_token": csrf_token(c, f"/sessions/{sw.session_id}")}).status_code == 409


def test_custodian_rotation_keeps_old_sessions_readable(sessions_world: SessionsWorld, app: Flask,
                                                        db: Database) -> None:
    sw = sessions_world
    holder = sw.holder.holder  # type: ignore[attr-defined]
    with db.session() as s:
        old = custody.current_key(s)
        assert old is not None
        new = custody.new_key(s, CUSTODIAN_PASSPHRASE.encode(), actor="test", now_us=sw.world.now(), os_user="test")
    assert new.key_id != old.key_id
    with db.session() as s:
        keys = custody.all_keys(s)
        assert [k.current for k in keys] == [False, True]
        assert all(json.loads(k.private_pem)["format"] == "irms.sealed-key/1" for k in keys)
        assert [custody.where_kept(k) for k in keys] == ["sealed", "sealed"]
    c = as_role(app, "prosecutor")
    pub = app.test_client().get("/api/v1/custodian.pub")
    assert pub.headers["X-IRMS-Key-Id"] == new.key_id and b"PUBLIC KEY" in pub.data
    assert holder.status()["not_held"] == [new.key_id]  # held only once unlocked again
    holder.unlock(CUSTODIAN_PASSPHRASE, "custodian-officer", "test")
    assert holder.status()["held"] == sorted([old.key_id, new.key_id])
    assert c.get(f"/replay/{sw.session_id}/seg/00000000.ts").status_code == 200  # old key, found by key id
    # locked: nothing plays, at once (no data key is kept by the worker); a wrong passphrase opens nothing
    holder.lock_all("custodian-officer", "test")
    resp = c.get(f"/replay/{sw.session_id}/seg/00000000.ts")
    assert resp.status_code == 503 and "irms-web custody unlock" in resp.get_data(as_text=True)
    with pytest.raises(CustodyError, match="does not open: wrong passphrase"):
        holder.unlock("sai mật khẩu hoàn toàn", "custodian-officer", "test")
    assert holder.status()["locked"] is True
    assert c.get(f"/replay/{sw.session_id}/seg/00000001.ts").status_code == 503
    with pytest.raises(Exception), db.session() as s:  # noqa: B017 - the error type differs per database
        s.delete(s.scalars(select(CustodianKey)).first())
        s.flush()


def test_cli_custodian_and_sessions_sync(sessions_world: SessionsWorld, config: WebConfig, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from web.cli import main
    args = ["--database", config.database_url]
    monkeypatch.setattr("sys.stdin", io.StringIO("ngắn\n"))
    assert main([*args, "custodian", "new", "--passphrase-stdin", "--out", str(tmp_path / "c.pub")]) == 2
    assert "at least 12 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(CUSTODIAN_PASSPHRASE + "\n"))
    assert main([*args, "custodian", "new", "--passphrase-stdin", "--out", str(tmp_path / "c.pub")]) == 0
    assert "PUBLIC KEY" in (tmp_path / "c.pub").read_text()
    assert main([*args, "custodian", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("current") == 1 and out.count("kept") == 1 and out.count("sealed") == 2
    assert main([*args, "sessions", "sync", "--store", str(sessions_world.store), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "2 sessions in the store: 0 new, 2 updated" in out and out.count(": verified") == 2
    # the passphrase in the environment is refused, with what to do instead
    monkeypatch.setenv("IRMS_CUSTODIAN_PASSPHRASE", CUSTODIAN_PASSPHRASE)
    assert main([*args, "custodian", "list"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "irms-web custody unlock" in err


def test_old_form_key_refused_until_rewrapped_and_sealed_key_imported(
        sessions_world: SessionsWorld, config: WebConfig, db: Database, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization

    from evidence import sealed_key
    from web.cli import main
    holder = sw_holder(sessions_world)
    args = ["--database", config.database_url]
    # a key kept the old way (PBKDF2-2048, AES-CBC PEM), as before this change
    old_key = X25519PrivateKey.generate()
    with db.session() as s:
        row = custody.import_key(s, old_key, CUSTODIAN_PASSPHRASE.encode(), actor="test",
                                 now_us=sessions_world.world.now(), os_user="test")
        row.private_pem = old_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.BestAvailableEncryption(b"old passphrase 2026")).decode()
        old_id = row.key_id
        s.commit()
    with pytest.raises(CustodyError, match=f"custodian key {old_id} is in the old PBKDF2-2048/AES-CBC form.*rewrap"):
        holder.unlock(CUSTODIAN_PASSPHRASE, "custodian-officer", "test")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"sai mật khẩu cũ\n{CUSTODIAN_PASSPHRASE}\n"))
    assert main([*args, "custody", "rewrap", "--passphrase-stdin"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(f"old passphrase 2026\n{CUSTODIAN_PASSPHRASE}\n"))
    assert main([*args, "custody", "rewrap", "--passphrase-stdin"]) == 0
    assert f"1 custodian keys sealed again (argon2id, AES-256-GCM): {old_id}" in capsys.readouterr().out
    holder.unlock(CUSTODIAN_PASSPHRASE, "custodian-officer", "test")
    assert old_id in holder.status()["held"]
    # a sealed key file from irms-verify custodian-keygen: its own passphrase, then the custodian's
    made = X25519PrivateKey.generate()
    (tmp_path / "made.key").write_text(sealed_key.seal(made, b"key file passphrase") + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(f"key file passphrase\n{CUSTODIAN_PASSPHRASE}\n"))
    assert main([*args, "custodian", "import", str(tmp_path / "made.key"), "--passphrase-stdin"]) == 0
    with db.session() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action.in_(("custodian.rewrap", "custodian.import")))
                            .order_by(AuditEntry.seq)).all()
        assert [e.action for e in entries][-2:] == ["custodian.rewrap", "custodian.import"]
        assert all(json.loads(e.detail)["os_user"] for e in entries[-2:])
        assert custody.current_key(s).private_pem != (tmp_path / "made.key").read_text().strip()  # sealed anew


def sw_holder(sw: SessionsWorld) -> Any:
    return sw.holder.holder  # type: ignore[attr-defined]


# --- session events from stations ----------------------------------------------------------------------


def _post_events(client: FlaskClient, st: object, now_us: int, events: list[dict[str, object]],
                 nonce: str | None = None) -> tuple[int, dict[str, object]]:
    body = json.dumps({"format": "irms.session-events/1", "station_id": st.station_id,  # type: ignore[attr-defined]
                       "sent_at_us": now_us, "events": events}).encode()
    headers = st.headers(body, now_us, nonce, path="/api/v1/sessions/events")  # type: ignore[attr-defined]
    resp = client.post("/api/v1/sessions/events", data=body, headers={**headers, "Content-Type": "application/json"})
    return resp.status_code, resp.get_json()


def test_events_api_signed_deduplicated_and_append_only(world: World, db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")
    t = world.now()
    sid = "6f1c2b1e-0000-4000-8000-000000000042"
    evs: list[dict[str, object]] = [
        {"seq": 1, "session_id": sid, "site": "HN-TTG", "room": "P01", "at_us": t, "kind": "start", "detail": ""},
        {"seq": 2, "session_id": sid, "site": "HN-TTG", "room": "P01", "at_us": t + 5, "kind": "pause",
         "detail": "nghỉ giải lao"}]
    code, ans = _post_events(world.client, st, t, evs)
    assert code == 201 and ans["accepted"] == 2
    code, ans = _post_events(world.client, st, t, evs + [
        {"seq": 3, "session_id": sid, "site": "HN-TTG", "room": "P01", "at_us": t + 9, "kind": "end",
         "detail": "stopped"}])
    assert code == 201 and ans["accepted"] == 1 and ans["duplicates"] == 2
    with db.session() as s:
        kinds = [e.kind for e in R.events_of(s, sid)]
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        assert kinds == ["start", "pause", "end"] and row.status == "ended" and row.station_id == st.station_id
    # the same refusals as heartbeats
    assert _post_events(world.client, st, t, evs, nonce="ab" * 16)[0] == 201
    assert _post_events(world.client, st, t, evs, nonce="ab" * 16)[0] == 409
    assert _post_events(world.client, st, t - 3_600_000_000, evs)[0] == 401
    bad = json.dumps({"format": "irms.session-events/1", "station_id": st.station_id, "sent_at_us": t,
                      "events": evs}).encode()
    other = world.enroll("HN-TTG", "P02")
    assert world.client.post("/api/v1/sessions/events", data=bad, headers={
        **st.headers(bad, t, path="/api/v1/sessions/events", key=other.key)}).status_code == 401
    # another room's station: refused whether it names the session's room or its own
    assert _post_events(world.client, other, t, [{**evs[0], "seq": 9}])[0] == 403
    assert _post_events(world.client, other, t, [{**evs[0], "seq": 9, "room": "P02"}])[0] == 403
    assert _post_events(world.client, st, t, [{**evs[0], "kind": ""}])[0] == 400
    with pytest.raises(Exception), db.session() as s:  # noqa: B017 - the error type differs per database
        s.delete(s.scalars(select(SessionEvent)).first())
        s.flush()


@pytest.fixture
def server(config: WebConfig, live_server: Callable[[Flask], str]) -> str:
    app = create_app(config.model_copy(update={"min_disk_free_bytes": 0}))
    return live_server(app)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.slow
def test_session_recorded_while_server_away_reaches_it_complete(world: World, server: str, irms_home: Path,
                                                                db: Database, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from recorder.cli import main as agent
    from recorder.heartbeat import HeartbeatQueue
    pub = tmp_path / "custodian.pub"
    save_public_key(pub, X25519PrivateKey.generate().public_key())
    assert agent(["keygen", "--station-id", "st-ev-01", "--custodian-public", str(pub)]) == 0
    assert agent(["enroll", "--server", server, "--code", world.code("HN-TTG", "P01")]) == 0
    store = tmp_path / "store"
    common = ["--store", str(store), "--site", "HN-TTG", "--room", "P01"]
    monkeypatch.setenv("IRMS_SERVER_URL", closed_port())  # the server is away for the whole session
    assert agent(["record", *common, "--seconds", "3", "--case", "9/2027/HS", "--suspect", "Lê Văn C",
                  "--interrogator", "Phạm D", "--legal-basis", "Điều 183", "--json"]) == 0
    q = HeartbeatQueue(irms_home / "events.db")
    queued = [json.loads(b) for _, b in q.oldest()]
    q.close()
    kinds = [e["kind"] for e in queued]
    assert kinds[0] == "start" and kinds[-1] == "end" and "capture_stop" in kinds
    assert queued[0]["header"]["case"]["case_number"] == "9/2027/HS"
    with db.session() as s:
        assert s.scalars(select(SessionEvent)).first() is None

    monkeypatch.delenv("IRMS_SERVER_URL")  # back: the next agent command sends the queue, oldest first
    assert agent(["upload", *common]) == 0
    sid = queued[0]["session_id"]
    with db.session() as s:
        got = [(e.kind, e.at_us) for e in R.events_of(s, sid)]
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        assert [k for k, _ in got] == kinds and [a for _, a in got] == [e["at_us"] for e in queued]
        assert row.status == "ended" and row.case_number == "9/2027/HS" and row.suspect == "Lê Văn C"
        assert row.header_known and row.site == "HN-TTG" and row.room == "P01"
    q = HeartbeatQueue(irms_home / "events.db")
    assert len(q) == 0
    q.close()
    shutil.rmtree(store, ignore_errors=True)
    assert PASSWORD  # the enrolled station needs no user


def test_a_playlist_is_made_once_for_every_worker(sessions_world: SessionsWorld, app: Flask, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The first worker keeps the playlist in the server's data folder; another one (nothing in its memory) serves
    that file and reads no segment row (an 8-hour session has 14,400: bench/replay.py)."""
    from web import replay

    st = app.extensions["irms"]
    st.config = st.config.model_copy(update={"testing": False})
    monkeypatch.setenv("IRMS_HOME", str(tmp_path / "home"))
    c = as_role(app, "prosecutor")
    url = f"/replay/{sessions_world.session_id}/index.m3u8"
    replay._playlists.clear()  # (earlier tests' workers are this process too)
    text = c.get(url).data
    kept = list((tmp_path / "home" / "replay-playlists").glob("*.m3u8.gz"))
    assert len(kept) == 1 and gzip.decompress(kept[0].read_bytes()) == text and text.startswith(b"#EXTM3U")
    replay._playlists.clear()
    monkeypatch.setattr(replay, "_segs", lambda row: pytest.fail("the segment rows were read again"))
    assert c.get(url).data == text
    gz = c.get(url, headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.data) == text


def test_playlist_follows_the_media_timeline_over_short_gaps() -> None:
    """A gap under the tolerance (no discontinuity) belongs to the entry after it: the entries add up to where each
    segment's media ends after its run's start, as the player places it by its timestamps, not to the sum of the
    durations (bench/replay.py: a looped clip's 64 ms seams drifted an 8-hour session 7.6 s by its middle)."""
    from web.recordings import Seg, media_map, playlist
    t0, d, seam = 1_800_000_000_000_000, 2_000_000, 64_000
    segs = [Seg(i, 0, t0 + i * d + (i // 3) * seam, d) for i in range(12)]  # a 64 ms gap before 3, 6 and 9
    segs += [Seg(12 + i, 1, t0 + (40 + i) * d, d) for i in range(3)]  # after a pause, run 1
    text = playlist(segs)
    entries = [(a, b) for a, b in zip(text.splitlines(), text.splitlines()[1:], strict=False)
               if a.startswith("#EXTINF:")]
    assert entries == [("#EXTINF:2.000,", "seg/00000000.ts"), ("#EXTINF:10.064,", "seg/00000001-00000005.ts"),
                       ("#EXTINF:10.128,", "seg/00000006-00000010.ts"), ("#EXTINF:2.000,", "seg/00000011.ts"),
                       ("#EXTINF:6.000,", "seg/00000012-00000014.ts")]
    # segment 11 ends 24.192 s after the run's start; run 1 begins there on the timeline, as the media map says
    assert segs[11].start_us + d - t0 == 24_192_000
    assert media_map(segs) == [[0, t0 // 1000], [24_192, (t0 + 40 * d) // 1000]]
    assert text.count("#EXT-X-DISCONTINUITY") == 1
    # A live playlist's entries never change as segments come (each needs only the segment before it).
    live = [playlist(segs[:n], live=True, ended=False).split("#EXT-X-PROGRAM-DATE-TIME", 1)[1]
            for n in range(1, len(segs) + 1)]
    assert all(b.startswith(a) for a, b in zip(live, live[1:], strict=False))
    assert "#EXTINF:2.064,\nseg/00000003.ts" in live[-1]


def test_playlist_groups_segments_within_runs() -> None:
    from web.recordings import Seg, playlist
    t0, d = 1_800_000_000_000_000, 2_000_000
    segs = [Seg(i, 0, t0 + i * d, d) for i in range(8)]  # run 0: 0..7
    segs += [Seg(8 + i, 1, t0 + (20 + i) * d, d) for i in range(7)]  # after a pause, run 1: 8..14
    text = playlist(segs)
    uris = [line for line in text.splitlines() if line.startswith("seg/")]
    assert uris == ["seg/00000000.ts", "seg/00000001-00000005.ts", "seg/00000006-00000007.ts",
                    "seg/00000008-00000012.ts", "seg/00000013-00000014.ts"]
    assert text.count("#EXT-X-DISCONTINUITY") == 1
    before, after = text.split("#EXT-X-DISCONTINUITY")
    assert before.rstrip().endswith("seg/00000006-00000007.ts") and "seg/00000008-00000012.ts" in after
    assert "#EXTINF:10.000,\nseg/00000001-00000005.ts" in text and "#EXT-X-TARGETDURATION:10" in text


def test_live_playlist_is_an_event_playlist_of_single_segments() -> None:
    """A session still recording: entries never change as segments come (one per segment), no end tag
    until it ended; a recorded entry keeps its URI when more come."""
    from web.recordings import Seg, playlist
    t0, d = 1_800_000_000_000_000, 2_000_000
    segs = [Seg(i, 0, t0 + i * d, d) for i in range(3)]
    text = playlist(segs, live=True, ended=False)
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    assert [x for x in text.splitlines() if x.startswith("seg/")] == [f"seg/{i:08d}.ts" for i in range(3)]
    more = playlist([*segs, Seg(3, 0, t0 + 3 * d, d)], live=True, ended=True)
    assert more.startswith(text.rstrip("\n")) and more.rstrip().endswith("seg/00000003.ts\n#EXT-X-ENDLIST".strip())


def test_the_station_that_signed_the_header_owns_the_session_over_an_earlier_claim(
        sessions_world: SessionsWorld, app: Flask, db: Database) -> None:
    """Another station claimed the session (a made-up head) before its header was known; the header read
    from the store names the owner: only its heads are the session's, the other's heads are refused."""
    from sqlalchemy import text

    from tests.web.conftest import beat
    from web.heartbeat.witness import witnessed_heads
    from web.models import Station, WitnessedHead
    sw = sessions_world
    w = sw.world
    other = w.enroll("HN-TTG", "P02")
    with db.session() as s:
        before = witnessed_heads(s, sw.session_id)
        other_pk = s.scalars(select(Station.id).where(Station.station_id == other.station_id)).one()
        # as if it had claimed the session and sent a head before the header arrived
        s.execute(text("INSERT INTO session_owners (session_id, station_pk, claimed_us) VALUES (:sid, :pk, 0)"),
                  {"sid": sw.session_id, "pk": other_pk})
        s.add(WitnessedHead(station_pk=other_pk, session_id=sw.session_id, idx=0, chain_head="f" * 64,
                            received_us=w.now()))
    with db.session() as s:
        heads = witnessed_heads(s, sw.session_id)
    assert heads == before and {"index": 0, "chain": "f" * 64} not in heads  # not the session's
    code, answer = beat(w.client, other, w.now(), recording={"session_id": sw.session_id, "index": 1,
                                                             "chain_head": "e" * 64})
    assert code == 403 and f"belongs to station {sw.station_id}" in str(answer["message"])
