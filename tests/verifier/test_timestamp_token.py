"""The offline check of an RFC 3161 token over a manifest: every way a token can fail to prove time."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from evidence.errors import FormatError
from tests.plugins.recording import BIN, Station, make_station
from tests.plugins.tsa import Tsa, running_tsa
from verifier.timestamp import check_token, request_token
from verifier.trust import load_tsa_roots

MANIFEST = b'{"format":"irms.manifest/1","session_id":"x"}'


@pytest.fixture
def token(tsa: Tsa) -> bytes:
    return request_token(tsa.url, MANIFEST)


def test_a_token_proves_when_the_manifest_existed(tsa: Tsa, token: bytes, tmp_path: Path) -> None:
    (tmp_path / "tsa").mkdir()
    (tmp_path / "tsa" / "loopback.pem").write_bytes(tsa.root_pem.read_bytes())
    proof = check_token(token, MANIFEST, list(load_tsa_roots(tmp_path)))
    assert proof.tsa.startswith("CN=IRMS loopback TSA,") and proof.accuracy_us == 1_000_000


def test_a_token_over_other_bytes_fails(tsa: Tsa, token: bytes) -> None:
    with pytest.raises(FormatError, match="does not verify: Mismatch between messages"):
        check_token(token, MANIFEST + b" ", load_tsa_roots_of(tsa))


def test_a_token_whose_signature_was_altered_fails(tsa: Tsa, token: bytes) -> None:
    bad = bytearray(token)
    bad[-5] ^= 0x01  # inside the TSA's signature value, the last member of the token
    with pytest.raises(FormatError):
        check_token(bytes(bad), MANIFEST, load_tsa_roots_of(tsa))


def test_a_token_from_a_tsa_the_trust_store_does_not_hold_fails(token: bytes, tmp_path: Path) -> None:
    with running_tsa(tmp_path / "other") as other, pytest.raises(FormatError, match="certificate verify error"):
        check_token(token, MANIFEST, load_tsa_roots_of(other))


def test_without_tsa_roots_a_token_is_not_taken_on_its_word(token: bytes, tmp_path: Path) -> None:
    assert load_tsa_roots(tmp_path) == ()
    with pytest.raises(FormatError, match="no TSA root certificate"):
        check_token(token, MANIFEST, [])


def test_bytes_that_are_no_token_fail(tsa: Tsa) -> None:
    with pytest.raises(FormatError, match="not an RFC 3161 time-stamp response"):
        check_token(b"\x30\x03\x02\x01\x00" + b"junk", MANIFEST, load_tsa_roots_of(tsa))


def load_tsa_roots_of(tsa: Tsa) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(tsa.root_pem.read_bytes())


# --- V18 on sessions recorded by irms-agent with a TSA configured ------------------------------------


@dataclass
class Stamped:
    station: Station
    store: Path
    sessions: list[str]


@pytest.fixture(scope="module")
def stamped(tsa: Tsa, tmp_path_factory: pytest.TempPathFactory) -> Stamped:
    """Two real 3 s sessions whose manifests were time-stamped by the loopback TSA; do not modify."""
    base = tmp_path_factory.mktemp("stamped")
    st = make_station(base, "st-tsa-01")
    (st.home / "station.toml").write_text(f'tsa_url = "{tsa.url}"\n')
    (st.trust / "tsa").mkdir(parents=True)
    (st.trust / "tsa" / "loopback.pem").write_bytes(tsa.root_pem.read_bytes())
    store = base / "store"
    sids = [str(st.record(str(store), 3, case=f"{n}/2026/HS")["session_id"]) for n in (1, 2)]
    return Stamped(st, store, sids)


@pytest.fixture
def stamped_copy(stamped: Stamped, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(stamped.store, dst)
    for p in dst.rglob("*"):
        p.chmod(0o750 if p.is_dir() else 0o640)
    return dst


def folder(store: Path, sid: str) -> Path:
    return next(p for p in store.glob(f"*/*/{sid}") if p.is_dir())


def verdict(st: Station, store: Path, sid: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(store), "--json"],
                          env=env or st.env(), capture_output=True, text=True, timeout=300, check=False)
    plain = subprocess.run([str(BIN / "irms-verify"), "session", sid, "--store", str(store)],
                           env=env or st.env(), capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, json.loads(proc.stdout), plain.stdout


@pytest.mark.slow
def test_v18_a_valid_token_proves_the_time_in_the_verdict(stamped: Stamped) -> None:
    rc, report, text = verdict(stamped.station, stamped.store, stamped.sessions[0])
    assert rc == 0, report
    proof = report["time_stamp"]
    assert proof["tsa"].startswith("CN=IRMS loopback TSA") and proof["gen_time_us"] > 0
    assert "time-stamped by CN=IRMS loopback TSA" in text and "the manifest existed no later" in text


@pytest.mark.slow
def test_v18_token_of_another_session_fails(stamped: Stamped, stamped_copy: Path) -> None:
    a, b = (folder(stamped_copy, s) for s in stamped.sessions)
    (a / "manifest.tsr").write_bytes((b / "manifest.tsr").read_bytes())
    rc, report, _ = verdict(stamped.station, stamped_copy, stamped.sessions[0])
    assert rc == 1 and [f["rule"] for f in report["findings"]] == ["V18"], report
    assert "Mismatch between messages" in report["findings"][0]["message"]


@pytest.mark.slow
def test_v18_altered_token_fails(stamped: Stamped, stamped_copy: Path) -> None:
    token = folder(stamped_copy, stamped.sessions[0]) / "manifest.tsr"
    data = bytearray(token.read_bytes())
    data[-5] ^= 0x01
    token.write_bytes(bytes(data))
    rc, report, _ = verdict(stamped.station, stamped_copy, stamped.sessions[0])
    assert rc == 1 and [f["rule"] for f in report["findings"]] == ["V18"], report


@pytest.mark.slow
def test_v18_token_whose_manifest_was_removed_fails(stamped: Stamped, stamped_copy: Path) -> None:
    (folder(stamped_copy, stamped.sessions[0]) / "manifest.json").unlink()
    rc, report, _ = verdict(stamped.station, stamped_copy, stamped.sessions[0])
    assert rc == 1 and [f["rule"] for f in report["findings"]] == ["V18"], report


@pytest.mark.slow
def test_v18_token_from_a_tsa_this_verifier_does_not_trust_fails(stamped: Stamped, tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    shutil.copytree(stamped.station.trust / "stations", trust / "stations")
    with running_tsa(tmp_path / "other") as other:
        (trust / "tsa").mkdir()
        (trust / "tsa" / "other.pem").write_bytes(other.root_pem.read_bytes())
    rc, report, _ = verdict(stamped.station, stamped.store, stamped.sessions[0],
                            {**stamped.station.env(), "IRMS_TRUST": str(trust)})
    # The manifest's token (V18) and the one over segment 0's chain head, asked for while recording (V19).
    assert rc == 1 and [f["rule"] for f in report["findings"]] == ["V18", "V19"], report


@pytest.mark.slow
def test_v18_without_tsa_roots_the_token_is_reported_unchecked_not_failed(stamped: Stamped, tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    shutil.copytree(stamped.station.trust / "stations", trust / "stations")
    rc, report, text = verdict(stamped.station, stamped.store, stamped.sessions[0],
                               {**stamped.station.env(), "IRMS_TRUST": str(trust)})
    assert rc == 0 and report["time_stamp"] is None, report
    assert "time-stamp token not checked: no TSA root certificate" in text


@pytest.mark.slow
def test_v18_an_export_carries_the_tsa_roots_and_says_so(stamped: Stamped, tmp_path: Path) -> None:
    out = tmp_path / "export"
    proc = stamped.station.verify("export", stamped.sessions[0], "--store", str(stamped.store), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    case_file = next(p for p in out.iterdir() if p.is_dir())
    assert (case_file / "trust" / "tsa" / "roots.pem").exists()
    empty = tmp_path / "empty-trust"
    empty.mkdir()
    rc, report, text = verdict(stamped.station, case_file, stamped.sessions[0],
                               {**stamped.station.env(), "IRMS_TRUST": str(empty)})
    assert rc == 0 and report["time_stamp"] is not None, report
    assert "TSA root carried by this folder" in text


# --- V19: tokens over chain heads, asked for while the session recorded -----------------------------


@pytest.fixture(scope="module")
def heads(tsa: Tsa, tmp_path_factory: pytest.TempPathFactory) -> Stamped:
    """One real 6 s session with a token over the latest chain head every second; do not modify."""
    base = tmp_path_factory.mktemp("heads")
    st = make_station(base, "st-tsa-02")
    (st.home / "station.toml").write_text(f'tsa_url = "{tsa.url}"\ntsa_heads_every_s = 1\n')
    (st.trust / "tsa").mkdir(parents=True)
    (st.trust / "tsa" / "loopback.pem").write_bytes(tsa.root_pem.read_bytes())
    store = base / "store"
    return Stamped(st, store, [str(st.record(str(store), 6)["session_id"])])


@pytest.fixture
def heads_copy(heads: Stamped, tmp_path: Path) -> Path:
    dst = tmp_path / "store"
    shutil.copytree(heads.store, dst)
    return dst


def head_tokens(store: Path, sid: str) -> list[Path]:
    return sorted((folder(store, sid) / "seg").glob("*.tsr"))


@pytest.mark.slow
def test_v19_chain_heads_time_stamped_while_recording_prove_their_time(heads: Stamped) -> None:
    tokens = head_tokens(heads.store, heads.sessions[0])
    assert len(tokens) >= 2 and tokens[0].name == "00000000.tsr", tokens
    rc, report, text = verdict(heads.station, heads.store, heads.sessions[0])
    assert rc == 0, report
    stamped = [h["segment"] for h in report["head_time_stamps"]]
    assert stamped == [int(t.stem) for t in tokens]
    # Each head was stamped after its segment was sealed: the TSA's time is not before the segment's end.
    seg = folder(heads.store, heads.sessions[0]) / "seg"
    for h in report["head_time_stamps"]:
        rec = json.loads((seg / f"{h['segment']:08d}.json").read_bytes())
        assert h["tsa"].startswith("CN=IRMS loopback TSA")
        assert h["gen_time_us"] + h["accuracy_us"] + 2_000_000 >= rec["start_us"] + rec["duration_us"]
    assert f"segments 0-{stamped[-1]} existed no later than" in text


@pytest.mark.slow
def test_v19_a_token_moved_to_another_chain_head_fails(heads: Stamped, heads_copy: Path) -> None:
    first, second = head_tokens(heads_copy, heads.sessions[0])[:2]
    second.write_bytes(first.read_bytes())
    rc, report, _ = verdict(heads.station, heads_copy, heads.sessions[0])
    assert rc == 1 and [(f["rule"], f["segment"]) for f in report["findings"]] == [("V19", int(second.stem))], report
    assert "Mismatch between messages" in report["findings"][0]["message"]


@pytest.mark.slow
def test_v19_an_altered_token_fails(heads: Stamped, heads_copy: Path) -> None:
    token = head_tokens(heads_copy, heads.sessions[0])[0]
    data = bytearray(token.read_bytes())
    data[-5] ^= 0x01
    token.write_bytes(bytes(data))
    rc, report, _ = verdict(heads.station, heads_copy, heads.sessions[0])
    assert rc == 1 and [(f["rule"], f["segment"]) for f in report["findings"]] == [("V19", 0)], report


@pytest.mark.slow
def test_v19_a_token_without_its_record_fails(heads: Stamped, heads_copy: Path) -> None:
    seg = folder(heads_copy, heads.sessions[0]) / "seg"
    last = max(int(p.stem) for p in seg.glob("*.json"))
    (seg / f"{last + 1:08d}.tsr").write_bytes(head_tokens(heads_copy, heads.sessions[0])[0].read_bytes())
    rc, report, _ = verdict(heads.station, heads_copy, heads.sessions[0])
    assert rc == 1 and "V19" in [f["rule"] for f in report["findings"]], report
    assert any("its record is not" in f["message"] for f in report["findings"])


@pytest.mark.slow
def test_v19_an_unterminated_session_keeps_the_time_its_heads_prove(heads: Stamped, heads_copy: Path) -> None:
    """The agent died before its manifest: the heads stamped while it recorded still prove time."""
    f = folder(heads_copy, heads.sessions[0])
    (f / "manifest.json").unlink()
    (f / "manifest.tsr").unlink()
    rc, report, text = verdict(heads.station, heads_copy, heads.sessions[0])
    assert rc == 4 and report["status"] == "unterminated", report
    assert report["head_time_stamps"] and "UNTERMINATED" in text and "existed no later than" in text, text


@pytest.mark.slow
def test_v19_tokens_from_a_tsa_this_verifier_does_not_trust_fail(heads: Stamped, tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    shutil.copytree(heads.station.trust / "stations", trust / "stations")
    with running_tsa(tmp_path / "other") as other:
        (trust / "tsa").mkdir()
        (trust / "tsa" / "other.pem").write_bytes(other.root_pem.read_bytes())
    rc, report, _ = verdict(heads.station, heads.store, heads.sessions[0],
                            {**heads.station.env(), "IRMS_TRUST": str(trust)})
    rules = [f["rule"] for f in report["findings"]]
    assert rc == 1 and rules[0] == "V18" and set(rules[1:]) == {"V19"} and len(rules) > 2, report
