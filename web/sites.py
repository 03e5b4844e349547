"""Provinces, sites and rooms: creation and CSV import (idempotent)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import FormatError
from evidence.formats import check_code
from web import audit
from web.errors import BadRequest
from web.models import FacilityType, Province, Room, Site

CSV_COLUMNS = ("province_code", "province_name", "site_code", "site_name", "facility_type", "room_code",
               "room_name")


def ensure_province(s: Session, code: str, name: str) -> Province:
    p = s.scalars(select(Province).where(Province.code == code)).first()
    if p is None:
        p = Province(code=code, name=name)
        s.add(p)
        s.flush()
    return p


def ensure_site(s: Session, province: Province, code: str, name: str, facility_type: str) -> tuple[Site, bool]:
    if facility_type not in {f.value for f in FacilityType}:
        raise BadRequest(f"facility type {facility_type!r} is not one of "
                         f"{', '.join(f.value for f in FacilityType)}")
    site = s.scalars(select(Site).where(Site.code == code)).first()
    if site is not None:
        return site, False
    site = Site(code=code, name=name, province_id=province.id, facility_type=facility_type)
    s.add(site)
    s.flush()
    return site, True


def ensure_room(s: Session, site: Site, code: str, name: str) -> tuple[Room, bool]:
    room = s.scalars(select(Room).where(Room.site_id == site.id, Room.code == code)).first()
    if room is not None:
        return room, False
    room = Room(site_id=site.id, code=code, name=name)
    s.add(room)
    s.flush()
    return room, True


@dataclass(frozen=True)
class ImportResult:
    sites_added: int
    rooms_added: int
    rows: int


def import_csv(s: Session, text: str, *, actor: str, now_us: int, source: str = "CSV") -> ImportResult:
    """Rows of province_code,province_name,site_code,site_name,facility_type,room_code,room_name.

    A row with empty room columns registers a site without rooms. Existing entries are kept.
    """
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise BadRequest(f"{source}: missing column(s) {', '.join(missing)}")
    sites_added = rooms_added = rows = 0
    for line, row in enumerate(reader, start=2):
        rows += 1
        try:
            pcode = check_code(row["province_code"].strip(), "province code")
            scode = check_code(row["site_code"].strip(), "site code")
            rcode = row["room_code"].strip()
            if rcode:
                check_code(rcode, "room code")
        except FormatError as err:
            raise BadRequest(f"{source} line {line}: {err}") from None
        province = ensure_province(s, pcode, row["province_name"].strip() or pcode)
        try:
            site, new_site = ensure_site(s, province, scode, row["site_name"].strip() or scode,
                                         row["facility_type"].strip())
        except BadRequest as err:
            raise BadRequest(f"{source} line {line}: {err}") from None
        sites_added += new_site
        if rcode:
            _, new_room = ensure_room(s, site, rcode, row["room_name"].strip() or rcode)
            rooms_added += new_room
    audit.append(s, at_us=now_us, actor=actor, action="sites.import", target=source,
                 detail={"rows": rows, "sites_added": sites_added, "rooms_added": rooms_added})
    return ImportResult(sites_added, rooms_added, rows)
