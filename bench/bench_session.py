"""A whole sealed session built in seconds for benchmarks: header, segments, records, manifest,
exactly as the recorder's sealer makes them, from any plain segments (no real-time capture)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from results import result

from evidence.canonical import canonical_json
from evidence.chain import chain_genesis
from evidence.crypto import new_data_key, wrap_key
from evidence.formats import (
    CaseInfo,
    build_header,
    build_manifest,
    header_name,
    locator_name,
    manifest_name,
    record_name,
    segment_name,
    session_prefix,
)
from evidence.keys import b64, public_raw, sign_document
from recorder.sealer import seal

T0 = 1_800_000_000_000_000
Put = Callable[[str, bytes], object]


def seal_session(put: Put, plains: Iterable[tuple[bytes, int, int]], station: Ed25519PrivateKey,
                 custodian: X25519PublicKey, case: str = "bench") -> str:
    """Seal `plains` ((bytes, start µs after T0, duration µs) in order) as one session; returns its id."""
    sid = str(uuid.uuid4())
    data_key = new_data_key()
    header = sign_document(build_header(
        session_id=sid, station_id="st-bench", station_key_b64=b64(public_raw(station.public_key())),
        site="BENCH", room="P1", case=CaseInfo(case, "Bench", ("bench",), "bench"),
        kit={"profile": "bench", "devices": []}, started_at_us=T0, segment_target_us=2_000_000,
        wrapped_key=wrap_key(data_key, custodian, sid, 0)), station)
    prefix = session_prefix("BENCH", "P1", sid)
    put(header_name(prefix), canonical_json(header))
    put(locator_name(sid), canonical_json({"format": "irms.locator/1", "prefix": prefix, "session_id": sid}))
    chain = chain_genesis(header)
    end = T0
    count = 0
    for i, (plain, start, duration) in enumerate(plains):
        out = seal(plain=plain, session_id=sid, index=i, key_index=0, run=0, data_key=data_key,
                   station_key=station, prev_chain=chain, start_us=T0 + start, duration_us=duration,
                   clock_offset_us=0, salvaged=False)
        put(segment_name(prefix, i), out.cipher)
        put(record_name(prefix, i), canonical_json(out.record))
        chain = out.record["chain"]
        end = T0 + start + duration
        count = i + 1
    put(manifest_name(prefix), canonical_json(sign_document(build_manifest(
        session_id=sid, header_sha256=chain_genesis(header), segment_count=count, chain_head=chain,
        started_at_us=T0, ended_at_us=end, end_reason="stopped", key_count=1, interruptions=[], events=[],
        devices=[]), station)))
    return sid


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one command run to its end (its output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=3600)
    return time.perf_counter() - start


def print_worst(name: str, ratios: list[float], target: float) -> None:
    """The figure of a benchmark: the worst of its runs' ratios against the same-run baseline."""
    worst = min(ratios)
    print(f"{name} worst of {len(ratios)} {worst:.3f} (target >= {target}) {'PASS' if worst >= target else 'FAIL'}")
    result(name, worst, f">= {target} (worst of {len(ratios)} runs)", worst >= target)
