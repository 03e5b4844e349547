"""Time from outside the station: each sealed manifest gets an RFC 3161 token from a real TSA on loopback
(OpenSSL's reply engine); a TSA that is away never blocks recording, the token follows later."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from evidence.formats import manifest_name, token_name
from tests.plugins.recording import Station
from tests.plugins.tsa import Tsa
from verifier.timestamp import TimestampUnavailable, check_token, request_token


def session_prefix_of(store: Path, session_id: str) -> str:
    return str(json.loads((store / "sessions" / f"{session_id}.json").read_text())["prefix"])


def roots(tsa: Tsa) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(tsa.root_pem.read_bytes())


@pytest.mark.slow
def test_a_sealed_manifest_gets_a_token_that_proves_its_time(station: Station, tsa: Tsa, tmp_path: Path) -> None:
    (station.home / "station.toml").write_text(f'tsa_url = "{tsa.url}"\n')
    store = tmp_path / "store"
    before = tsa.answered
    summary = station.record(str(store), 3)
    prefix = session_prefix_of(store, str(summary["session_id"]))
    manifest = (store / manifest_name(prefix)).read_bytes()
    token = (store / token_name(prefix)).read_bytes()
    proof = check_token(token, manifest, roots(tsa))
    sealed_at = json.loads(manifest)["ended_at_us"]
    # One token over the manifest, one over segment 0's chain head (asked for at most every 60 s while recording).
    assert tsa.answered == before + 2
    assert "IRMS loopback TSA" in proof.tsa
    # The token was asked for after the manifest was sealed: its time is not before the session's end.
    assert proof.gen_time_us + proof.accuracy_us + 2_000_000 >= sealed_at
    # A verifier without the TSA's root still verifies the session, and says the token is unchecked.
    verdict = station.verify("session", str(summary["session_id"]), "--store", str(store))
    assert verdict.returncode == 0 and "time-stamp token not checked" in verdict.stdout, verdict.stdout


@pytest.mark.slow
def test_a_tsa_away_never_blocks_recording_and_the_token_follows(station: Station, tsa: Tsa,
                                                                 tmp_path: Path) -> None:
    (station.home / "station.toml").write_text(f'tsa_url = "{tsa.url}"\n')
    store = tmp_path / "store"
    tsa.away()
    try:
        proc = station.agent("record", "--kit", "synthetic", "--seconds", "3", "--store", str(store), "--site",
                             "HN-CA-01", "--room", "P101", "--case", "3/2026/HS", "--json")
    finally:
        tsa.back()
    sid = json.loads(proc.stdout)["session_id"]
    prefix = session_prefix_of(store, sid)
    assert (store / manifest_name(prefix)).exists()
    assert not (store / token_name(prefix)).exists()
    assert "waits for its time-stamp token" in proc.stderr and "HTTP 503" in proc.stderr
    assert station.verify("session", sid, "--store", str(store)).returncode == 0
    # The TSA is back: the next upload asks again and the token joins the session.
    upload = station.agent("upload", "--store", str(store), "--site", "HN-CA-01", "--room", "P101")
    assert upload.returncode == 0
    proof = check_token((store / token_name(prefix)).read_bytes(), (store / manifest_name(prefix)).read_bytes(),
                        roots(tsa))
    assert proof.serial > 0


def test_the_tsa_client_gets_a_token_and_names_an_unreachable_tsa(tsa: Tsa) -> None:
    token = request_token(tsa.url, b"the manifest's bytes")
    assert check_token(token, b"the manifest's bytes", roots(tsa)).gen_time_us > 0
    with pytest.raises(TimestampUnavailable, match="unreachable"):
        request_token("http://127.0.0.1:9/tsa", b"x", timeout=2)


@pytest.mark.slow
def test_chain_heads_wait_for_a_tsa_that_is_away_and_recording_goes_on(station: Station, tsa: Tsa,
                                                                       tmp_path: Path) -> None:
    """While recording, the TSA is away until it has refused two requests (the first head and one retry):
    sealing never waits for it, the warning is said once, and when it is back the latest chain head gets
    its token (V19)."""
    (station.home / "station.toml").write_text(f'tsa_url = "{tsa.url}"\ntsa_heads_every_s = 1\n')
    store = tmp_path / "store"
    refused, done = tsa.refused, threading.Event()

    def back_after_two_refusals() -> None:
        while not done.is_set() and tsa.refused < refused + 2:
            time.sleep(0.05)
        tsa.back()

    tsa.away()
    waiter = threading.Thread(target=back_after_two_refusals)
    waiter.start()
    try:
        proc = station.agent("record", "--kit", "synthetic", "--seconds", "8", "--store", str(store), "--site",
                             "HN-CA-01", "--room", "P101", "--case", "4/2026/HS", "--json")
    finally:
        done.set()
        waiter.join()
        tsa.back()
    assert tsa.refused >= refused + 2
    sid = json.loads(proc.stdout)["session_id"]
    assert proc.stderr.count("chain heads wait for a time-stamp token") == 1, proc.stderr
    heads = sorted((store / session_prefix_of(store, sid) / "seg").glob("*.tsr"))
    assert heads and heads[0].name != "00000000.tsr", heads  # segment 0 was sealed while the TSA was away
    verdict = station.verify("session", sid, "--store", str(store), "--json")
    assert verdict.returncode == 0, verdict.stdout
