"""irms-web: db upgrade, user add, import-sites, coverage, audit verify, demo-country."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from web.cli import main
from web.db import Database, head_revision


@pytest.fixture
def fresh_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("IRMS_HOME", str(tmp_path / "home"))
    for name in list(__import__("os").environ):
        if name.startswith("IRMS_WEB_"):
            monkeypatch.delenv(name)
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_schema_must_be_upgraded_first(fresh_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", fresh_db, "coverage"]) == 4
    assert "irms-web db upgrade" in capsys.readouterr().err
    assert main(["--database", fresh_db, "db", "upgrade"]) == 0
    assert main(["--database", fresh_db, "db", "upgrade"]) == 0  # idempotent
    assert f"revision {head_revision()}" in capsys.readouterr().out


def test_user_import_coverage_audit(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", fresh_db, "db", "upgrade"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("một mật khẩu dài\n"))
    assert main(["--database", fresh_db, "user", "add", "lan", "--role", "auditor", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--database", fresh_db, "user", "add", "minh", "--role", "admin", "--password-stdin"]) == 2
    assert "at least 10" in capsys.readouterr().err
    csv = tmp_path / "sites.csv"
    csv.write_text(
        "province_code,province_name,site_code,site_name,facility_type,room_code,room_name\n"
        "HNI,Thành phố Hà Nội,HN-TTG,Trại tạm giam Hà Nội,detention_centre,P01,Phòng 1\n"
        "HNI,Thành phố Hà Nội,HN-TTG,Trại tạm giam Hà Nội,detention_centre,P02,Phòng 2\n"
        "HUE,Thành phố Huế,HUE-NTG,Nhà tạm giữ Huế,temporary_detention,,\n", encoding="utf-8")
    assert main(["--database", fresh_db, "import-sites", str(csv)]) == 0
    assert "2 sites and 2 rooms added" in capsys.readouterr().out
    assert main(["--database", fresh_db, "import-sites", str(csv)]) == 0
    assert "0 sites and 0 rooms added" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("province_code,site_code\nX,Y\n")
    assert main(["--database", fresh_db, "import-sites", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err

    assert main(["--database", fresh_db, "coverage", "--json"]) == 0
    cov = json.loads(capsys.readouterr().out)
    assert (cov["facilities_total"], cov["rooms_total"], cov["rooms_working"]) == (2, 2, 0)
    assert main(["--database", fresh_db, "coverage", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "HN-TTG/P01: no recording station enrolled" in out

    assert main(["--database", fresh_db, "audit", "verify"]) == 0
    assert "3 entries" in capsys.readouterr().out
    db = Database(fresh_db)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    db.dispose()
    assert main(["--database", fresh_db, "audit", "verify"]) == 1
    assert "entry 2 is missing" in capsys.readouterr().err


def test_demo_country(fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database", fresh_db, "demo-country", "--keys", str(tmp_path / "keys")]) == 0
    out = capsys.readouterr().out
    assert "34 provinces, 136 sites" in out
    assert main(["--database", fresh_db, "coverage", "--json"]) == 0
    cov = json.loads(capsys.readouterr().out)
    assert len(cov["provinces"]) == 34 and cov["facilities_total"] == 136
    assert 0.5 < cov["facility_ratio"] < 1.0 and cov["failing_rooms"]
    assert {"silent", "probe_failed", "disk_low", "clock_off", "selftest_failed", "selftest_stale"} <= {
        r["code"] for f in cov["failing_rooms"] for r in f["reasons"]}
    keys = list((tmp_path / "keys").glob("*.key"))
    assert len(keys) > 150
    # The demo stations' private keys: readable by their owner only, in a folder nobody else enters.
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert {k.stat().st_mode & 0o777 for k in keys} == {0o600}


def test_station_code_and_revoke(fresh_db: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--database", fresh_db, "db", "upgrade"]) == 0
    csv = tmp_path / "s.csv"
    csv.write_text("province_code,province_name,site_code,site_name,facility_type,room_code,room_name\n"
                   "HNI,Hà Nội,HN-1,Một,procuracy,P01,Phòng 1\n")
    assert main(["--database", fresh_db, "import-sites", str(csv)]) == 0
    capsys.readouterr()
    assert main(["--database", fresh_db, "station", "code", "HN-1", "--room", "P01"]) == 0
    code = capsys.readouterr().out.strip()
    assert len(code) == 19 and code.count("-") == 3
    assert main(["--database", fresh_db, "station", "code", "HN-1", "--room", "P99"]) == 1
    assert main(["--database", fresh_db, "station", "revoke", "st-none", "--reason", "x"]) == 1
    assert "no station st-none" in capsys.readouterr().err
