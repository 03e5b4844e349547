"""The coverage evidence bundle (`irms.coverage-bundle/2`, docs/evidence-format.md): the format and its
offline recomputation.

A bundle is a folder the server writes (`irms-web coverage export`) and anyone checks (`irms-verify
coverage`): the heartbeats of a period exactly as the stations signed them, the stations' public keys
with their enrolment and revocation, the site/room registry and the coverage policy, each a file whose
SHA-256 the manifest lists, the manifest signed by the server's Ed25519 audit key. The figure is
recomputed with the server's own pure function (evidence/coverage.py). A heartbeat is trusted only if
its station signed it. Stations sign their runs (`run` in each heartbeat), so the bundle carries only the
last heartbeat of each run and every failing one; an ok heartbeat credits only the run behind it, so the
server can leave any heartbeat out (which only lowers the figure) but cannot make one up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evidence.canonical import canonical_json, parse_canonical
from evidence.coverage import (
    DAY_US,
    US,
    HeartbeatFacts,
    Policy,
    RoomIn,
    SiteIn,
    Span,
    accumulate_uptime,
    facts_from_doc,
    judge_heartbeat,
    run_credit,
)
from evidence.errors import FormatError, SignatureError
from evidence.keys import b64, ed25519_public_from_raw, key_id, public_raw, sign_document, unb64, verify_document
from evidence.request_auth import H_NONCE, H_SIGNATURE, H_STATION, H_TIMESTAMP, request_bytes

BUNDLE_FORMAT = "irms.coverage-bundle/2"
MANIFEST = "manifest.json"
FILES = ("policy.json", "registry.json", "stations.json", "heartbeats.jsonl", "server-figure.json")
"""Every file the manifest lists, in this order."""
SIGNED_HEADERS = (H_STATION, H_TIMESTAMP, H_NONCE, H_SIGNATURE)


class BundleError(FormatError):
    """The bundle as a whole cannot be trusted (manifest signature, a file's hash, a malformed file)."""


def signed_envelope(path: str, headers: Mapping[str, str]) -> str:
    """What the server keeps of a heartbeat's signed request beside its body: the path it was signed for
    and the four signature headers as received (canonical JSON)."""
    return canonical_json({"headers": {h: headers[h] for h in SIGNED_HEADERS}, "path": path}).decode()


def heartbeat_line(station_id: str, room_id: int | None, received_us: int, body: str, signed: Any) -> bytes:
    """One line of heartbeats.jsonl (canonical JSON and a newline). `signed` is the parsed envelope (None
    for a heartbeat stored before the server kept signatures)."""
    return canonical_json({"body": body, "received_us": received_us, "room_id": room_id, "signed": signed,
                           "station_id": station_id}) + b"\n"


def sign_heartbeat(key: Ed25519PrivateKey, station_id: str, body: bytes, timestamp_s: int, nonce: str,
                   path: str = "/api/v1/heartbeat") -> dict[str, Any]:
    """The envelope a station's signature makes (as evidence.request_auth.sign_request), for tests and benches."""
    sig = key.sign(request_bytes("POST", path, station_id, timestamp_s, nonce, body))
    return {"headers": {H_STATION: station_id, H_TIMESTAMP: str(timestamp_s), H_NONCE: nonce,
                        H_SIGNATURE: b64(sig)}, "path": path}


def period_bounds(first: dt.date, last: dt.date, tz: dt.tzinfo, cut_us: int) -> list[tuple[dt.date, int, int]]:
    """The local calendar days first..last as (date, start_us, end_us), cut at `cut_us` (as the dashboard's
    `day_bounds`: a day is 24 h from local midnight); days starting at or after the cut are left out."""
    out = []
    d = first
    while d <= last:
        lo = int(dt.datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()) * US
        if lo >= cut_us:
            break
        out.append((d, lo, min(lo + DAY_US, cut_us)))
        d += dt.timedelta(days=1)
    return out


# --- the figure -------------------------------------------------------------------------------------------


def _ratio(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


def figure_of(registry: Registry, spans: Iterable[Span], bounds: Sequence[tuple[dt.date, int, int]],
              cut_us: int) -> dict[str, Any]:
    """The figure per day, per province and nationally from working spans (the dashboard's trend rule:
    room uptime is the mean share of the day each room worked, facilities equipped the mean share of the
    day each facility had a working room). Ratios are decimal strings with 9 places, so two computations
    compare exactly."""
    span_list = list(spans)
    days = [b[0].isoformat() for b in bounds]

    def part(sites: Sequence[SiteIn], rooms: Sequence[RoomIn]) -> dict[str, Any]:
        ids = {r.id for r in rooms}
        sums = accumulate_uptime(sites, rooms, [s for s in span_list if s.room_id in ids], bounds, cut_us)
        per_day = []
        for (d, lo, hi), room_us, site_us in zip(bounds, sums.room_day_us, sums.site_day_us, strict=True):
            length = hi - lo
            per_day.append({"day": d.isoformat(),
                            "room_uptime": _round(_ratio(room_us, length * len(rooms))),
                            "facility_equipped": _round(_ratio(site_us, length * len(sites)))})
        window = sum(hi - lo for _, lo, hi in bounds)
        return {"rooms": len(rooms), "facilities": len(sites), "days": per_day,
                "room_uptime": _round(_ratio(sum(sums.room_us.values()), window * len(rooms)))}

    rooms_by_site: dict[int, list[RoomIn]] = defaultdict(list)
    for r in registry.rooms:
        rooms_by_site[r.site_id].append(r)
    provinces = {}
    for code in sorted({p for p, _ in registry.provinces}):
        sites = [s for s in registry.sites if s.province_code == code]
        provinces[code] = part(sites, [r for s in sites for r in rooms_by_site[s.id]])
    national = part(registry.sites, [r for s in registry.sites for r in rooms_by_site[s.id]])
    return {"days": days, "national": national, "provinces": provinces}


def _round(x: float | None) -> str | None:
    """A ratio as canonical JSON can hold it (no floats): a decimal string with 9 places."""
    return None if x is None else f"{x:.9f}"


def compare_figures(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """Where two figures differ, one line each (empty: equal)."""
    out: list[str] = []

    def cmp(where: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> None:
        if a.get("room_uptime") != b.get("room_uptime"):
            out.append(f"{where}: room uptime over the period {_pct(a.get('room_uptime'))} recomputed, "
                       f"{_pct(b.get('room_uptime'))} on the server")
        for x, y in zip(a.get("days", []), b.get("days", []), strict=False):
            for k in ("room_uptime", "facility_equipped"):
                if x.get(k) != y.get(k):
                    out.append(f"{where} {x.get('day')}: {k.replace('_', ' ')} {_pct(x.get(k))} recomputed, "
                               f"{_pct(y.get(k))} on the server")

    cmp("national", ours["national"], theirs.get("national", {}))
    for code, fig in ours["provinces"].items():
        cmp(f"province {code}", fig, theirs.get("provinces", {}).get(code, {}))
    return out


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.4f} %"


# --- reading and checking a bundle ------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    provinces: tuple[tuple[str, str], ...]
    sites: tuple[SiteIn, ...]
    rooms: tuple[RoomIn, ...]


@dataclass(frozen=True)
class StationEntry:
    station_id: str
    key: Ed25519PublicKey
    room_id: int | None
    enrolled_at_us: int
    revoked_at_us: int | None


@dataclass
class Result:
    """What `recompute` found: the figure and what it rests on."""

    manifest: dict[str, Any]
    server_key_id: str
    figure: dict[str, Any]
    verified: int = 0
    stations: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """Refusal reason -> count."""
    examples: list[str] = field(default_factory=list)
    """The first refusals, one line each (line number, station, why)."""
    differences: list[str] = field(default_factory=list)
    """Where the recomputed figure differs from the server's (empty: equal)."""
    runs_credited: int = 0
    runs_refused: dict[str, int] = field(default_factory=dict)
    """Run claim refusal code -> count (the heartbeat still counts as verified; its run credits nothing)."""

    def refuse(self, line: int, station: str, why: str, code: str) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1
        if len(self.examples) < 50:
            self.examples.append(f"heartbeats.jsonl line {line} (station {station}): {why}")

    def refuse_run(self, line: int, station: str, why: str, code: str) -> None:
        self.runs_refused[code] = self.runs_refused.get(code, 0) + 1
        if len(self.examples) < 50:
            self.examples.append(f"heartbeats.jsonl line {line} (station {station}): run refused ({code}): {why}")

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def as_json(self) -> dict[str, Any]:
        return {"format": "irms.coverage-check/1", "from": self.manifest["from"], "to": self.manifest["to"],
                "server_key_id": self.server_key_id, "heartbeats_verified": self.verified,
                "stations": self.stations, "heartbeats_refused": self.refused_total, "refused": self.refused,
                "runs_credited": self.runs_credited, "runs_refused": self.runs_refused,
                "refusals": self.examples, "figure": self.figure, "equal_to_server": not self.differences,
                "differences": self.differences}


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as err:
        raise BundleError(f"{folder / name}: cannot be read ({err.strerror})") from None


def check_manifest(folder: Path, server_key: Ed25519PublicKey | None) -> tuple[dict[str, Any], Ed25519PublicKey]:
    """The manifest, its signature by the server key (the one given, else the one it carries) and every
    file's SHA-256 and size; raises BundleError naming the first thing wrong."""
    manifest = parse_canonical(_read(folder, MANIFEST), MANIFEST)
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{MANIFEST}: format is {manifest.get('format')!r}, not {BUNDLE_FORMAT}")
    carried = ed25519_public_from_raw(unb64(manifest.get("server_key"), "manifest server_key"), "server key")
    key = server_key or carried
    try:
        verify_document(manifest, key, MANIFEST)
    except SignatureError as err:
        raise BundleError(f"{err} (the server's key {key_id(public_raw(key))})") from None
    files = manifest.get("files")
    if not isinstance(files, dict) or sorted(files) != sorted(FILES):
        raise BundleError(f"{MANIFEST}: files must list exactly {', '.join(FILES)}")
    for name in FILES:
        data = _read(folder, name)
        want = files[name]
        if hashlib.sha256(data).hexdigest() != want.get("sha256") or len(data) != want.get("bytes"):
            raise BundleError(f"{name} was changed after the manifest was signed (its SHA-256 or size differs)")
    return manifest, key


def load_policy(data: bytes) -> Policy:
    try:
        return Policy.from_json(parse_canonical(data, "policy.json"))
    except ValueError as err:
        raise BundleError(f"policy.json: {err}") from None


def load_registry(data: bytes) -> Registry:
    doc = parse_canonical(data, "registry.json")
    try:
        return Registry(tuple((str(p["code"]), str(p["name"])) for p in doc["provinces"]),
                        tuple(SiteIn(int(s["id"]), str(s["code"]), str(s["name"]), str(s["province"]),
                                     str(s["facility_type"])) for s in doc["sites"]),
                        tuple(RoomIn(int(r["id"]), int(r["site_id"]), str(r["code"]), str(r["name"]))
                              for r in doc["rooms"]))
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"registry.json: missing or bad member {err}") from None


def load_stations(data: bytes) -> dict[str, StationEntry]:
    doc = parse_canonical(data, "stations.json")
    out = {}
    try:
        for s in doc["stations"]:
            out[str(s["station_id"])] = StationEntry(
                str(s["station_id"]), ed25519_public_from_raw(unb64(s["public_key"], "public_key"), "station key"),
                None if s["room_id"] is None else int(s["room_id"]), int(s["enrolled_at_us"]),
                None if s["revoked_at_us"] is None else int(s["revoked_at_us"]))
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"stations.json: missing or bad member {err}") from None
    return out


def heartbeat_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    start = 0
    n = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            end = len(data)
        n += 1
        yield n, data[start:end]
        start = end + 1


def recompute(folder: Path, server_key: Ed25519PublicKey | None = None, window_s: int | None = None,
              workers: int = 1) -> Result:
    """Check the bundle and recompute its figure, offline; raises BundleError if the bundle itself is not
    what the server signed. Heartbeats that do not hold are refused one by one, with the reason. With
    `workers` > 1 the heartbeats are checked in that many processes (the signatures are most of the time)."""
    manifest, key = check_manifest(folder, server_key)
    policy_bytes, stations_bytes = _read(folder, "policy.json"), _read(folder, "stations.json")
    policy = load_policy(policy_bytes)
    registry = load_registry(_read(folder, "registry.json"))
    stations = load_stations(stations_bytes)
    try:
        tz = ZoneInfo(str(manifest["timezone"]))
        first, last = dt.date.fromisoformat(manifest["from"]), dt.date.fromisoformat(manifest["to"])
        cut_us = int(manifest["cut_us"])
        window = int(window_s if window_s is not None else manifest["request_window_s"])
    except (KeyError, ValueError, ZoneInfoNotFoundError) as err:
        raise BundleError(f"{MANIFEST}: missing or bad member {err}") from None
    bounds = period_bounds(first, last, tz, cut_us)
    result = Result(manifest, key_id(public_raw(key)), {})
    samples: dict[str, list[Kept]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    data = _read(folder, "heartbeats.jsonl")
    chunks = _chunks(data, workers * 4) if workers > 1 else [(1, data)]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_worker_init,
                                 initargs=(policy_bytes, stations_bytes, window)) as pool:
            checked: Iterable[list[Checked]] = pool.map(_check_chunk, chunks)
            for part in checked:
                _take(part, result, samples, seen)
    else:
        _worker_init(policy_bytes, stations_bytes, window)
        for chunk in chunks:
            _take(_check_chunk(chunk), result, samples, seen)
    result.stations = len(samples)
    spans = [sp for sid, kept in samples.items() for sp in _credits(result, stations[sid], kept, policy)]
    result.figure = figure_of(registry, spans, bounds, cut_us)
    server = parse_canonical(_read(folder, "server-figure.json"), "server-figure.json")
    result.differences = compare_figures(result.figure, server)
    return result


def _credits(result: Result, st: StationEntry, kept: list[Kept], policy: Policy) -> list[Span]:
    """A station's credited runs (`run_credit`), each run claim checked against the station's failing
    heartbeats in the bundle; refused claims are counted with their code."""
    failures = sorted(f.at_us for _, f, ok, _ in kept if not ok)
    failing_bodies = {h for _, _, ok, h in kept if not ok}
    out = []
    for n, facts, ok, _ in kept:
        credit = run_credit(facts, ok, policy, st.enrolled_at_us, failures, failing_bodies)
        if credit.refused is not None:
            result.refuse_run(n, st.station_id, credit.why, credit.refused)
        elif credit.span is not None and st.room_id is not None:
            result.runs_credited += 1
            out.append(Span(st.room_id, *credit.span))
    return out


Kept = tuple[int, HeartbeatFacts, bool, str]
"""(line, facts, ok, SHA-256 of the body) of a heartbeat that holds."""
Checked = tuple[int, str, str, HeartbeatFacts, bool, str] | tuple[int, str, str, str]
"""(line, station, nonce, facts, ok, body SHA-256) for a heartbeat that holds, else (line, station, code, why)."""
_WORKER: dict[str, Any] = {}


def _worker_init(policy_bytes: bytes, stations_bytes: bytes, window_s: int) -> None:
    _WORKER.update(policy=load_policy(policy_bytes), stations=load_stations(stations_bytes), window=window_s)


def _chunks(data: bytes, n: int) -> list[tuple[int, bytes]]:
    """`data` cut into about `n` pieces at line ends, each with the number of its first line."""
    out = []
    start, line = 0, 1
    size = max(len(data) // n, 1)
    while start < len(data):
        end = data.find(b"\n", min(start + size, len(data) - 1))
        end = len(data) if end < 0 else end + 1
        out.append((line, data[start:end]))
        line += data.count(b"\n", start, end)
        start = end
    return out


def _check_chunk(chunk: tuple[int, bytes]) -> list[Checked]:
    first, data = chunk
    policy, stations, window = _WORKER["policy"], _WORKER["stations"], _WORKER["window"]
    out: list[Checked] = []
    for n, line in heartbeat_lines(data):
        n += first - 1
        try:
            rec = json.loads(line)
        except ValueError:
            out.append((n, "?", "malformed", "not a JSON line"))
            continue
        sid = str(rec.get("station_id", "?")) if isinstance(rec, dict) else "?"
        got = _check_heartbeat(rec, stations, window)
        if not isinstance(got, HeartbeatFacts):
            out.append((n, sid, got[0], got[1]))
            continue
        facts = got._replace(enrolled_at_us=stations[sid].enrolled_at_us)
        out.append((n, sid, rec["signed"]["headers"][H_NONCE], facts, not judge_heartbeat(facts, policy),
                    hashlib.sha256(rec["body"].encode("utf-8")).hexdigest()))
    return out


def _take(checked: list[Checked], result: Result, samples: dict[str, list[Kept]],
          seen: set[tuple[str, str]]) -> None:
    """Count a chunk's results in line order; a nonce a station used before is refused as a replay."""
    for item in checked:
        if len(item) == 4:
            n, sid, code, why = item
            result.refuse(n, sid, why, code)
            continue
        n, sid, nonce, facts, ok, digest = item
        if (sid, nonce) in seen:
            result.refuse(n, sid, f"nonce {nonce} was used before by this station", "replayed")
            continue
        seen.add((sid, nonce))
        samples[sid].append((n, facts, ok, digest))
        result.verified += 1


def _check_heartbeat(rec: Any, stations: Mapping[str, StationEntry], window_s: int
                     ) -> HeartbeatFacts | tuple[str, str]:
    """The heartbeat's facts if it holds, else (code, why)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("body"), str) or not isinstance(rec.get("received_us"),
                                                                                           int):
        return ("malformed", "not a heartbeat record")
    sid = rec.get("station_id")
    st = stations.get(sid) if isinstance(sid, str) else None
    if st is None:
        return ("key_not_enrolled", f"station {sid} is not among the enrolled stations: its key is not known")
    signed = rec.get("signed")
    if not isinstance(signed, dict):
        return ("unsigned", "the server kept no signature for it (stored before signatures were kept)")
    headers = signed.get("headers")
    if not isinstance(headers, dict) or any(not isinstance(headers.get(h), str) for h in SIGNED_HEADERS):
        return ("malformed", "signature headers missing")
    body = rec["body"].encode("utf-8")
    try:
        ts = int(headers[H_TIMESTAMP])
        st.key.verify(unb64(headers[H_SIGNATURE], "signature"),
                      request_bytes("POST", str(signed.get("path")), headers[H_STATION], ts, headers[H_NONCE], body))
    except (InvalidSignature, ValueError, FormatError):
        return ("bad_signature", f"its signature does not verify with station {sid}'s key")
    if headers[H_STATION] != sid:
        return ("bad_signature", f"signed by station {headers[H_STATION]}, not {sid}")
    if rec.get("room_id") != st.room_id:
        return ("wrong_room", f"recorded for room {rec.get('room_id')}, but station {sid} is enrolled for room "
                              f"{st.room_id}")
    received = rec["received_us"]
    if abs(received // US - ts) > window_s:
        return ("received_time", f"received at {received} µs, {received // US - ts:+d} s from its signed time "
                                 f"(window {window_s} s)")
    if received < st.enrolled_at_us:
        return ("before_enrolment", "received before its station was enrolled")
    if st.revoked_at_us is not None and received >= st.revoked_at_us:
        return ("after_revocation", "received after its station was revoked")
    try:
        doc = json.loads(body)
        if not isinstance(doc, dict) or doc.get("station_id") != sid:
            return ("malformed", "its body is not this station's heartbeat")
        return facts_from_doc(doc, received)
    except ValueError as err:
        return ("malformed", f"its body is not a heartbeat: {err}")


# --- writing ----------------------------------------------------------------------------------------------


def write_bundle(folder: Path, *, signer: Ed25519PrivateKey, first: dt.date, last: dt.date, timezone: str,
                 cut_us: int, created_at_us: int, request_window_s: int, files: Mapping[str, bytes]) -> dict[str, Any]:
    """Write the files and the manifest over them, signed by the server key; returns the manifest."""
    folder.mkdir(parents=True, exist_ok=False)
    listed = {}
    for name in FILES:
        data = files[name]
        (folder / name).write_bytes(data)
        listed[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = sign_document({
        "format": BUNDLE_FORMAT, "from": first.isoformat(), "to": last.isoformat(), "timezone": timezone,
        "cut_us": cut_us, "created_at_us": created_at_us, "request_window_s": request_window_s,
        "server_key": b64(public_raw(signer.public_key())), "files": listed}, signer)
    (folder / MANIFEST).write_bytes(canonical_json(manifest))
    return manifest


def registry_json(registry: Registry) -> bytes:
    return canonical_json({
        "format": "irms.coverage-registry/1",
        "provinces": [{"code": c, "name": n} for c, n in registry.provinces],
        "sites": [{"id": s.id, "code": s.code, "name": s.name, "province": s.province_code,
                   "facility_type": s.facility_type} for s in registry.sites],
        "rooms": [{"id": r.id, "site_id": r.site_id, "code": r.code, "name": r.name} for r in registry.rooms]})


def stations_json(stations: Iterable[Mapping[str, Any]]) -> bytes:
    """Each: station_id, public_key (raw Ed25519, base64), room_id, enrolled_at_us, enrolled_by (who issued
    the code), code_issued_at_us, revoked_at_us, revoked_reason."""
    return canonical_json({"format": "irms.coverage-stations/1", "stations": list(stations)})


def policy_json(policy: Policy) -> bytes:
    return canonical_json(policy.as_json())


def figure_json(figure: Mapping[str, Any]) -> bytes:
    return canonical_json({"format": "irms.coverage-figure/1", **figure})
