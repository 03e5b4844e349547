"""The daily self-test (R19): record a short sealed clip from the room's kit, verify it, probe
every device, and keep the result; "working today" in the coverage figure means this passed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from evidence.durable import write_durable
from evidence.errors import IrmsError
from evidence.formats import CaseInfo
from recorder.preflight import probe_kit
from recorder.probe import ProbeResult, probe_disk, probe_store
from recorder.session import Recorder


def run_selftest(rec: Recorder, seconds: float) -> dict[str, Any]:
    """Probe, record `seconds`, verify, and store the result under IRMS_HOME/selftest/."""
    # The verifier only here: the heartbeat daemon imports this module for latest_selftest().
    from verifier.session import Options, audit
    from verifier.trust import TrustStore, trust_dir

    now = rec.clock.now_us()
    # Generated (synthetic) devices pass here; their signal is judged in the recorded clip below.
    checks = probe_kit(rec.profile, rec.settings.credentials)
    checks.append(probe_disk(rec.station.home, rec.settings.min_free_bytes))
    checks.append(probe_store(rec.store, device=rec.store.url))
    rec.health.every_s = 0.0  # judge every segment of the clip
    rec.health.focus = True  # and its focus: the verdict has it
    sid = None
    verified = False
    error = ""
    try:
        sid = rec.start(CaseInfo("SELFTEST", "-", ("irms-agent selftest",), "R19 kiểm tra hằng ngày / daily self-test"),
                        seconds)
        reason = rec.record(sid, rec.journal.session(sid).planned_end_us)
        rec.close(sid, reason)
        pending = rec.finish_uploads()
        if pending:
            error = f"{pending} objects not uploaded"
        else:
            report = audit(rec.store, sid, Options(trust=TrustStore.from_dir(trust_dir())), fail_fast=True)
            verified = report.ok
            error = "; ".join(str(f) for f in report.findings)
    except IrmsError as err:
        error = str(err)
    judged = rec.health.clip_results()
    checks += judged or [ProbeResult("selftest.judged", "recording", 0, 1, "segments", False,
                                     "no segment of the clip was long enough to judge the picture and sound")]
    checks.append(ProbeResult("selftest.verified", "recording", "yes" if verified else "no", "yes", "",
                              verified, "the self-test clip verifies" if verified else f"not verified: {error}"))
    result = {
        "format": "irms.selftest/1",
        "at_us": now,
        "station_id": rec.station.station_id,
        "site": rec.settings.site,
        "room": rec.settings.room,
        "kit": rec.profile.name,
        "session_id": sid,
        "ok": all(c.ok for c in checks),
        "checks": [dataclasses.asdict(c) for c in checks],
    }
    folder = rec.station.home / "selftest"
    day = dt.datetime.fromtimestamp(now / 1e6, dt.UTC).strftime("%Y-%m-%d")
    data = json.dumps(result, ensure_ascii=False, indent=1).encode()
    write_durable(folder / f"{day}.json", data, mode=0o600)
    write_durable(folder / "latest.json", data, mode=0o600)
    return result


def latest_selftest(home: Path) -> dict[str, Any] | None:
    path = home / "selftest" / "latest.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return None



