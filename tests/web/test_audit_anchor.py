"""The audit log cannot be rewritten unseen (issue 12 §2): signed heads the stations keep.

The real server (`irms-web serve`, gunicorn + uvicorn workers, PostgreSQL) answers each heartbeat
with its signed audit head; the station's own code (recorder.heartbeat: queue, signed POST, flush)
keeps them. A database admin then rewrites the log as an attacker would (triggers dropped, two
export entries deleted, who replayed a session changed, the chain recomputed, triggers restored):
the chain alone still verifies, the heads the station kept do not.
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from evidence import keys as K
from recorder.clock import SystemClock
from recorder.heartbeat import HeartbeatQueue, ServerLink, build_heartbeat, encode, flush
from tests.plugins.tsa import Tsa, make_tsa_files
from tests.web.conftest import World, beat, csrf_token, login
from tests.web.test_serve_ingest import Served, served  # noqa: F401 (fixture)
from web import audit
from web.audit_anchor import HEAD_FORMAT
from web.cli import main as web_cli
from web.db import Database


def _beat(queue: HeartbeatQueue, link: ServerLink) -> dict[str, object]:
    now = SystemClock().now_us()
    doc = build_heartbeat(link.station_id, now, probes=[], disk_free_bytes=100 * 2**30, clock_offset_ms=0,
                          store_ok=True, versions={"agent": "test"}, recording=None)
    queue.push(encode(doc), now)
    res = flush(queue, link)
    assert res.sent == 1 and res.last_answer is not None
    return res.last_answer


def _entries(srv: Served, *rows: tuple[str, str, str]) -> None:
    with srv.db.session() as s:
        for actor, action, target in rows:
            audit.append(s, at_us=SystemClock().now_us(), actor=actor, action=action, target=target)


def _rewrite(srv: Served) -> None:
    """What an admin with database access did: drop the triggers, delete two export entries, change who
    replayed a session, recompute the chain, restore the triggers."""
    with srv.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        rows = conn.execute(text("SELECT at_us, actor, action, target, detail FROM audit_log ORDER BY seq")).all()
        conn.execute(text("DELETE FROM audit_log"))
        kept = [r for r in rows if not (r.action == "session.export" and r.target in ("S-2", "S-5"))]
        last = None
        for r in kept:
            actor = "kiemsat.b" if r.action == "session.replay" and r.target == "S-4" else r.actor
            row = audit.next_entry(last, at_us=r.at_us, actor=actor, action=r.action, target=r.target,
                                   detail=json.loads(r.detail))
            conn.execute(text("INSERT INTO audit_log (seq, at_us, actor, action, target, detail, prev_hash, hash) "
                              "VALUES (:seq, :at_us, :actor, :action, :target, :detail, :prev_hash, :hash)"), row)
            last = (row["seq"], row["hash"])
        conn.execute(text("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
                          "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"))


@pytest.mark.postgres
def test_a_rewritten_audit_log_fails_against_the_heads_the_station_kept(
        served: Served, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    st = served.stations[0]
    queue = HeartbeatQueue(tmp_path / "station" / "heartbeats.db")
    link = ServerLink(served.url, st.station_id, st.key, SystemClock())
    assert "audit_head" not in _beat(queue, link)  # an empty log has no head
    _entries(served, ("kiemsat.a", "session.export", "S-1"), ("kiemsat.a", "session.export", "S-2"),
             ("kiemsat.a", "session.replay", "S-3"))
    answer = _beat(queue, link)
    assert answer["audit_head"]["format"] == HEAD_FORMAT and answer["audit_head"]["seq"] == 3  # type: ignore[index]
    _entries(served, ("kiemsat.a", "session.replay", "S-4"), ("kiemsat.a", "session.export", "S-5"),
             ("kiemsat.a", "session.export", "S-6"))
    _beat(queue, link)
    _beat(queue, link)  # the same head again: kept once
    _entries(served, ("admin", "user.add", "kiemsat.b"))
    _beat(queue, link)
    heads = queue.audit_heads()
    queue.close()
    assert [h["seq"] for h in heads] == [3, 6, 7]
    # signed by the key the server keeps outside the database, beside it in IRMS_HOME (0600)
    key_file = tmp_path / "audit-signing.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    public = K.load_private_key(key_file).public_key()
    for h in heads:
        K.verify_document(h, public, "audit head")  # type: ignore[arg-type]
    witness = tmp_path / "heads.json"
    witness.write_text(json.dumps(heads))
    # as a custodian would take them off the station: sqlite3 heartbeats.db "SELECT head FROM audit_heads"
    lines = tmp_path / "heads.jsonl"
    with sqlite3.connect(tmp_path / "station" / "heartbeats.db") as conn:
        lines.write_text("".join(r[0] + "\n" for r in conn.execute("SELECT head FROM audit_heads")))
    monkeypatch.setenv("IRMS_HOME", str(tmp_path))

    assert web_cli(["--database", pg_url, "audit", "verify", "--witness", str(witness)]) == 0
    assert "matches 3 heads witnessed by stations" in capsys.readouterr().out
    assert web_cli(["--database", pg_url, "audit", "verify", "--witness", str(lines)]) == 0
    assert "matches 3 heads witnessed by stations" in capsys.readouterr().out

    _rewrite(served)
    assert web_cli(["--database", pg_url, "audit", "verify"]) == 0  # the chain alone cannot tell
    assert "audit log verified: 5 entries" in capsys.readouterr().out
    assert web_cli(["--database", pg_url, "audit", "verify", "--witness", str(witness)]) == 1
    err = capsys.readouterr().err
    assert "audit log entry 3 differs from the head stations witnessed" in err, err
    assert err.count("\n") == 1

    # a head not signed by the server's audit key proves nothing, and is said so
    forged = K.sign_document({"format": HEAD_FORMAT, "seq": 3, "hash": "0" * 64}, st.key)
    witness.write_text(json.dumps([forged]))
    assert web_cli(["--database", pg_url, "audit", "verify", "--witness", str(witness)]) == 1
    assert "not the server's audit key" in capsys.readouterr().err


def test_the_auditor_page_checks_the_log_against_collected_heads(world: World, app: Flask, client: FlaskClient,
                                                                 db: Database) -> None:
    st = world.enroll("HN-TTG", "P01")  # enrollment is audited: the log has a head
    world.user("thanh.tra", "auditor")
    code, answer = beat(client, st, world.now())
    assert code == 201
    head = answer["audit_head"]
    assert isinstance(head, dict) and head["format"] == HEAD_FORMAT
    K.verify_document(head, app.extensions["irms"].audit_signer.public_key, "audit head")
    assert login(client, "thanh.tra") == 302

    def check(heads: list[object]) -> str:
        page = client.post("/admin/audit/witness", data={
            "csrf_token": csrf_token(client, "/admin/audit"),
            "heads": (io.BytesIO(json.dumps(heads).encode()), "heads.json")}, content_type="multipart/form-data")
        assert page.status_code == 200
        return page.get_data(as_text=True)

    assert 'id="witness-status">Khớp với các đỉnh chuỗi mà các trạm đã lưu: 1' in check([head])
    # a head the server signed for that entry with another hash: the entry is named
    other = app.extensions["irms"].audit_signer.head(head["seq"], "0" * 64)
    assert f"audit log entry {head['seq']} differs from the head stations witnessed" in check([other])
    with db.session() as s:
        checks = s.execute(text("SELECT actor, detail FROM audit_log WHERE action = 'audit.witness_check' "
                                "ORDER BY seq")).all()
    assert [(a, json.loads(d)["ok"]) for a, d in checks] == [("thanh.tra", True), ("thanh.tra", False)]


@pytest.mark.postgres
def test_audit_heads_time_stamped_by_the_tsa_fix_the_log(
        served: Served, tmp_path: Path, pg_url: str, tsa: Tsa, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IRMS_HOME", str(tmp_path))  # the server's audit key is there
    monkeypatch.setenv("IRMS_WEB_AUDIT_TSA_URL", tsa.url)
    trust = tmp_path / "trust"
    (trust / "tsa").mkdir(parents=True)
    shutil.copy(tsa.root_pem, trust / "tsa" / "root.pem")

    def cli(*args: str) -> int:
        return web_cli(["--database", pg_url, "audit", *args])

    assert cli("timestamp") == 0 and "nothing to do" in capsys.readouterr().out  # an empty log
    _entries(served, ("kiemsat.a", "session.export", "S-1"), ("kiemsat.a", "session.export", "S-2"),
             ("kiemsat.a", "session.replay", "S-3"))
    assert cli("timestamp") == 0 and "audit log entry 3 time-stamped" in capsys.readouterr().out
    assert cli("timestamp") == 0 and "nothing to do" in capsys.readouterr().out  # same head, within the interval
    _entries(served, ("kiemsat.a", "session.replay", "S-4"), ("kiemsat.a", "session.export", "S-5"))
    tsa.away()
    try:
        assert cli("timestamp") == 3
        assert "time-stamping authority" in capsys.readouterr().err
    finally:
        tsa.back()
    assert cli("timestamp") == 0 and "audit log entry 5 time-stamped" in capsys.readouterr().out
    assert cli("verify", "--tsa-trust", str(trust)) == 0
    assert "matches 2 time-stamped heads (newest: entry 5)" in capsys.readouterr().out
    with served.db.session() as s:  # kept outside the audit log, append-only
        assert s.execute(text("SELECT count(*) FROM audit_timestamps")).scalar() == 2
    _rewrite(served)
    assert cli("verify") == 0
    capsys.readouterr()
    assert cli("verify", "--tsa-trust", str(trust)) == 1
    assert "audit log entry 3 differs from the head stations witnessed" in capsys.readouterr().err
    other = tmp_path / "other-trust"
    (other / "tsa").mkdir(parents=True)
    (tmp_path / "other-tsa").mkdir()
    make_tsa_files(tmp_path / "other-tsa")
    shutil.copy(tmp_path / "other-tsa" / "root.pem", other / "tsa" / "root.pem")
    assert cli("verify", "--tsa-trust", str(other)) == 1
    assert "time-stamp token does not verify" in capsys.readouterr().err
