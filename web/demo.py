"""The demo country: the 34 provincial-level units (since the 1 July 2025 merger), a few sites
each, rooms with simulated stations, 30 days of uptime history, and a heartbeat simulator.

Units (web/scope.py): the national unit `VN`, a provincial unit `VKS-<province>` for each province
and under it one regional unit `VKS-<province>-KV1`; each province's sites are in its provincial
unit, its regional temporary-detention house in the regional unit. With a password, demo users
scoped to them: `ksv.toanquoc` and `kiemtra.toanquoc` (national prosecutor and auditor), and per
province `ksv.<province>` (prosecutor) and `kiemtra.<province>` (auditor, no personal data)."""

from __future__ import annotations

import base64
import json
import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence import keys as K
from evidence.owner_only import write_private
from evidence.protocol import HEARTBEAT_PATH
from evidence.request_auth import sign_request
from web import audit
from web.coverage import DAY_US, US, Policy, RunState, facts_from_doc, judge_heartbeat, next_run
from web.models import FacilityType, Heartbeat, Role, Station, StationStatus, UnitKind, UptimeSpan, User, UserUnit
from web.sites import ensure_province, ensure_room, ensure_site
from web.units import ensure_unit

# Code, name: 6 centrally-run cities then 28 provinces (Resolution 202/2025/QH15).
PROVINCES: tuple[tuple[str, str], ...] = (
    ("HNI", "Thành phố Hà Nội"), ("HCM", "Thành phố Hồ Chí Minh"), ("HPG", "Thành phố Hải Phòng"),
    ("DNG", "Thành phố Đà Nẵng"), ("CTO", "Thành phố Cần Thơ"), ("HUE", "Thành phố Huế"),
    ("LCU", "Lai Châu"), ("DBN", "Điện Biên"), ("SLA", "Sơn La"), ("LSN", "Lạng Sơn"),
    ("QNH", "Quảng Ninh"), ("THA", "Thanh Hóa"), ("NAN", "Nghệ An"), ("HTH", "Hà Tĩnh"),
    ("CBG", "Cao Bằng"), ("TQG", "Tuyên Quang"), ("LCI", "Lào Cai"), ("TNN", "Thái Nguyên"),
    ("PTO", "Phú Thọ"), ("BNH", "Bắc Ninh"), ("HYN", "Hưng Yên"), ("NBH", "Ninh Bình"),
    ("QTI", "Quảng Trị"), ("QNI", "Quảng Ngãi"), ("GLI", "Gia Lai"), ("KHA", "Khánh Hòa"),
    ("LDG", "Lâm Đồng"), ("DLK", "Đắk Lắk"), ("DNI", "Đồng Nai"), ("TNH", "Tây Ninh"),
    ("VLG", "Vĩnh Long"), ("DTP", "Đồng Tháp"), ("CMU", "Cà Mau"), ("AGG", "An Giang"),
)

SITE_KINDS: tuple[tuple[str, str, str, int], ...] = (
    ("TTG", "Trại tạm giam Công an {p}", FacilityType.DETENTION_CENTRE.value, 3),
    ("CQDT", "Cơ quan CSĐT Công an {p}", FacilityType.INVESTIGATION_OFFICE.value, 2),
    ("NTG", "Nhà tạm giữ Công an khu vực {p}", FacilityType.TEMPORARY_DETENTION.value, 1),
    ("VKS", "Viện kiểm sát nhân dân {p}", FacilityType.PROCURACY.value, 1),
)

# What a simulated station reports now; most work.
STATES = ("working",) * 16 + ("silent", "camera_black", "disk_low", "clock_off", "mic_silent", "selftest_failed",
                              "selftest_stale")

SELFTEST_AT_UTC_S = 19 * 3600 + 30 * 60
"""The demo stations' daily self-test runs at 02:30 in Vietnam (19:30 UTC)."""


def last_selftest_us(state: str, sent_us: int) -> int:
    """When a demo station's latest self-test ran: the last 02:30 before `sent_us` (two days earlier when
    its state is `selftest_stale`)."""
    at = sent_us - (sent_us - SELFTEST_AT_UTC_S * US) % DAY_US
    return at - 2 * DAY_US if state == "selftest_stale" else at


def heartbeat_doc(station_id: str, state: str, sent_us: int) -> dict[str, object]:
    """A heartbeat (without its run) as a station on the synthetic kit would send it in `state`."""
    cam_ok = state != "camera_black"
    mic_ok = state != "mic_silent"
    body = {
        "format": "irms.heartbeat/1", "station_id": station_id, "sent_at_us": sent_us,
        "probes": [
            {"check": "camera.black", "device": "wide", "ok": cam_ok, "value": "120.0" if cam_ok else "3.1",
             "unit": "luma",
             "reason": "mean luma 120.0" if cam_ok else "mean luma 3.1, below 20: the picture is black"},
            {"check": "mic.level", "device": "room", "ok": mic_ok, "value": "-22.0" if mic_ok else "-91.0",
             "unit": "dBFS", "reason": "-22.0 dBFS" if mic_ok else "-91.0 dBFS, below -60: silent"},
            {"check": "store.reachable", "device": "store", "ok": True, "reason": "store answers"},
        ],
        "disk_free_bytes": 3 * 2**30 if state == "disk_low" else 200 * 2**30,
        "clock_offset_ms": 47_000 if state == "clock_off" else 12,
        "store_ok": True,
        "versions": {"agent": "0.1.0", "kit": "synthetic"},
        "selftest": {"at_us": last_selftest_us(state, sent_us), "ok": state != "selftest_failed"},
    }
    return body


def heartbeat_body(station_id: str, state: str, sent_us: int) -> bytes:
    """A heartbeat as a station on the synthetic kit would send it in `state` (no run)."""
    return json.dumps(heartbeat_doc(station_id, state, sent_us), separators=(",", ":")).encode()


@dataclass
class SimRun:
    """A simulated station's run (docs/evidence-format.md, "Heartbeat runs"), built as `irms-agent run` builds
    it: judged with the policy and enrolment the server's answers carry."""

    state: RunState | None = None
    policy: Policy | None = None
    enrolled_at_us: int | None = None

    def body(self, station_id: str, state: str, sent_us: int) -> bytes:
        doc = heartbeat_doc(station_id, state, sent_us)
        policy = self.policy or Policy()
        run = next_run(self.state, doc, policy, self.enrolled_at_us)
        raw = json.dumps({**doc, "run": run.as_json()}, separators=(",", ":")).encode()
        self.state = (self.state or RunState()).after(run, sent_us, raw)
        return raw

    def learn(self, answer: object) -> None:
        """Keep the policy and enrolment a heartbeat answer carries."""
        if isinstance(answer, dict) and isinstance(answer.get("policy"), dict):
            self.policy = Policy.from_json(answer["policy"])
            enrolled = answer.get("enrolled_at_us")
            self.enrolled_at_us = enrolled if isinstance(enrolled, int) else None


def demo_heartbeat_row(station_pk: int, station_id: str, state: str, at_us: int, policy: Policy) -> Heartbeat:
    """A stored heartbeat as ingest would have stored it (judged by the same pure function)."""
    body = heartbeat_body(station_id, state, at_us)
    doc = json.loads(body)
    reasons = judge_heartbeat(facts_from_doc(doc, at_us), policy)
    return Heartbeat(station_pk=station_pk, received_us=at_us, sent_us=at_us, ok=not reasons,
                     reasons=json.dumps([r.as_json() for r in reasons], ensure_ascii=False),
                     disk_free_bytes=doc["disk_free_bytes"], clock_offset_ms=doc["clock_offset_ms"],
                     body=body.decode())


@dataclass(frozen=True)
class DemoSummary:
    provinces: int
    sites: int
    rooms: int
    stations: int
    units: int = 0
    users: int = 0


def seed(s: Session, *, now_us: int, policy: Policy, days: int = 30, rng_seed: int = 2025,
         keys_dir: Path | None = None, sites_per_kind: int = 1, with_history: bool = True,
         provinces: tuple[tuple[str, str], ...] = PROVINCES, users_password: str | None = None) -> DemoSummary:
    """Fill the database with the demo country; station keys go to `keys_dir` when given; demo users
    (one password for all) when `users_password` is given."""
    rng = random.Random(rng_seed)
    n_sites = n_rooms = n_stations = 0
    if keys_dir is not None:
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys_dir.chmod(0o700)  # private keys: the demo's stations' only secret
    states: dict[str, str] = {}
    nation = ensure_unit(s, code=NATIONAL_UNIT, name="Viện kiểm sát nhân dân tối cao (toàn quốc)",
                         kind=UnitKind.NATIONAL.value, parent=None, now_us=now_us)
    units = [nation]
    for pcode, pname in provinces:
        prov = ensure_province(s, pcode, pname)
        punit = ensure_unit(s, code=f"VKS-{pcode}", name=f"Viện kiểm sát nhân dân {pname}",
                            kind=UnitKind.PROVINCE.value, parent=nation, now_us=now_us)
        runit = ensure_unit(s, code=f"VKS-{pcode}-KV1", name=f"Viện kiểm sát nhân dân khu vực 1 - {pname}",
                            kind=UnitKind.REGION.value, parent=punit, now_us=now_us)
        units += [punit, runit]
        for kind, name_t, ftype, n_room in SITE_KINDS:
            for k in range(1, sites_per_kind + 1):
                code = f"{pcode}-{kind}{k:02d}" if sites_per_kind > 1 else f"{pcode}-{kind}"
                site, _ = ensure_site(s, prov, code, name_t.format(p=pname), ftype)
                if site.unit_id is None:
                    site.unit_id = runit.id if kind == "NTG" else punit.id
                n_sites += 1
                if kind == "NTG" and rng.random() < 0.1:
                    continue  # a registered site whose rooms are not registered yet
                for r in range(1, n_room + 1):
                    room, new = ensure_room(s, site, f"P{r:02d}", f"Phòng hỏi cung {r:02d}")
                    n_rooms += 1
                    if not new or rng.random() < 0.05:
                        continue  # no station yet
                    key = Ed25519PrivateKey.generate()
                    raw = K.public_raw(key.public_key())
                    sid = f"st-{code.lower()}-p{r:02d}"
                    st = Station(station_id=sid, public_key=K.b64(raw), status=StationStatus.ENROLLED.value,
                                 hardware_profile="synthetic", room_id=room.id,
                                 enrolled_at_us=now_us - days * DAY_US)
                    if rng.random() < 0.01:
                        st.status, st.revoked_at_us, st.revoked_reason = (
                            StationStatus.REVOKED.value, now_us - DAY_US, "máy bị hỏng / hardware failure")
                    s.add(st)
                    s.flush()
                    n_stations += 1
                    state = rng.choice(STATES)
                    states[sid] = state
                    if keys_dir is not None:
                        path = keys_dir / f"{sid}.key"
                        path.unlink(missing_ok=True)  # a re-seed replaces it, still never readable by others
                        write_private(path, key.private_bytes_raw())
                    last_us = now_us - (rng.randint(40, 400) * 60 * US if state == "silent"
                                        else rng.randint(0, policy.interval_s) * US)
                    hb = demo_heartbeat_row(st.id, sid, state, last_us, policy)
                    ok = hb.ok
                    s.add(hb)
                    s.flush()
                    st.last_heartbeat_id = hb.id
                    st.last_seen_us = last_us
                    if with_history:
                        _history(s, rng, st, room.id, now_us, last_us, ok, days, policy)
    if keys_dir is not None:
        (keys_dir / "states.json").write_text(json.dumps(states, indent=1))
    n_users = _users(s, provinces, users_password, now_us) if users_password else 0
    audit.append(s, at_us=now_us, actor="irms-web demo-country", action="demo.seed", target="",
                 detail={"sites": n_sites, "rooms": n_rooms, "stations": n_stations, "units": len(units),
                         "users": n_users})
    return DemoSummary(len(provinces), n_sites, n_rooms, n_stations, len(units), n_users)


NATIONAL_UNIT = "VN"


def demo_users(provinces: tuple[tuple[str, str], ...] = PROVINCES) -> list[tuple[str, str, str, str]]:
    """(username, display name, role, unit code) of the demo users."""
    out = [("ksv.toanquoc", "Kiểm sát viên VKSND tối cao", Role.PROSECUTOR.value, NATIONAL_UNIT),
           ("kiemtra.toanquoc", "Kiểm tra viên toàn quốc", Role.AUDITOR.value, NATIONAL_UNIT)]
    for pcode, pname in provinces:
        out.append((f"ksv.{pcode.lower()}", f"Kiểm sát viên {pname}", Role.PROSECUTOR.value, f"VKS-{pcode}"))
        out.append((f"kiemtra.{pcode.lower()}", f"Kiểm tra viên {pname}", Role.AUDITOR.value, f"VKS-{pcode}"))
    return out


def _users(s: Session, provinces: tuple[tuple[str, str], ...], password: str, now_us: int) -> int:
    """The demo users, each in its unit; one password hash for all (argon2 is slow on purpose)."""
    from web.models import Unit
    from web.users import MIN_PASSWORD, hash_password
    if len(password) < MIN_PASSWORD:
        from web.errors import BadRequest
        raise BadRequest(f"password must have at least {MIN_PASSWORD} characters")
    digest = hash_password(password)
    unit_ids = dict(s.execute(select(Unit.code, Unit.id)).all())
    n = 0
    for username, name, role, unit in demo_users(provinces):
        if s.scalars(select(User).where(User.username == username)).first() is not None:
            continue
        user = User(username=username, display_name=name, role=role, password_hash=digest, active=True,
                    created_at_us=now_us)
        s.add(user)
        s.flush()
        s.add(UserUnit(user_id=user.id, unit_id=unit_ids[unit], personal_data=False, granted_by="irms-web demo-country",
                       granted_at_us=now_us))
        n += 1
    s.flush()
    return n


def _history(s: Session, rng: random.Random, st: Station, room_id: int, now_us: int, last_us: int, ok_now: bool,
             days: int, policy: Policy) -> None:
    """Working spans over the window with a few random outages, ending at the last heartbeat."""
    t = now_us - days * DAY_US
    end_all = last_us + policy.fresh_us if ok_now else last_us - rng.randint(1, 48) * 3600 * US
    last_span = None
    while t < end_all:
        up = int(rng.expovariate(1 / (6 * DAY_US)))
        span_end = min(t + max(up, 3600 * US), end_all)
        span = UptimeSpan(station_pk=st.id, room_id=room_id, start_us=t, end_us=span_end,
                          closed=span_end != end_all or not ok_now)
        s.add(span)
        last_span = span
        t = span_end + int(rng.uniform(0.5, 10) * 3600 * US)
    if last_span is not None:
        s.flush()
        st.last_span_id = last_span.id
        if not last_span.closed:
            st.span_start_us, st.span_end_us = last_span.start_us, last_span.end_us


def stations_with_keys(s: Session, keys_dir: Path) -> list[tuple[str, Ed25519PrivateKey, str]]:
    states = json.loads((keys_dir / "states.json").read_text())
    out = []
    for sid in s.scalars(select(Station.station_id).where(Station.status == StationStatus.ENROLLED.value)):
        path = keys_dir / f"{sid}.key"
        if path.exists():
            out.append((sid, Ed25519PrivateKey.from_private_bytes(path.read_bytes()), states.get(sid, "working")))
    return out


def simulate(server: str, stations: list[tuple[str, Ed25519PrivateKey, str]], interval_s: float,
             rounds: int | None = None, log: bool = True) -> None:
    """Send a signed heartbeat for every non-silent demo station each interval (Ctrl-C stops)."""
    path = HEARTBEAT_PATH
    runs = {sid: SimRun() for sid, _, _ in stations}
    done = 0
    while rounds is None or done < rounds:
        t0 = time.monotonic()
        sent = failed = 0
        for sid, key, state in stations:
            if state == "silent":
                continue
            now_us = time.time_ns() // 1000
            body = runs[sid].body(sid, state, now_us)
            headers = sign_request(key, sid, "POST", path, body, now_us // US)
            req = urllib.request.Request(server.rstrip("/") + path, data=body, method="POST",
                                         headers={**headers, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    runs[sid].learn(json.loads(resp.read()))
                sent += 1
            except (urllib.error.URLError, OSError):
                failed += 1
        done += 1
        if log:
            print(f"simulator: round {done}: {sent} heartbeats sent, {failed} failed", flush=True)
        if rounds is not None and done >= rounds:
            break
        time.sleep(max(0.0, interval_s - (time.monotonic() - t0)))


def public_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(K.public_raw(key.public_key())).decode()
