"""The live view's refresh reads on from the last record it checked (web/recordings.refresh_recording,
verifier/live.py), counted on the real file store; and what a shared link shows of the markers."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select

from storage.base import ObjectStore
from storage.url import open_store
from tests.web.conftest import FakeNow, SessionsWorld, csrf_token
from verifier.session import audit
from web import recordings as R
from web.db import Database
from web.models import RecordingSession, SessionSegment, SessionStatus


class CountingStore:
    """The real store, counting the reads a refresh makes (every other call passes straight through)."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.gets: list[str] = []
        self.lists = 0

    def get(self, name: str) -> bytes:
        self.gets.append(name)
        return self.inner.get(name)

    def list(self, prefix: str = "") -> Iterator[str]:
        self.lists += 1
        return self.inner.list(prefix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def reset(self) -> None:
        self.gets, self.lists = [], 0


class LiveCopy:
    """A copy of a recorded session that grows as a recording one does: header, key objects, then segments
    (ciphertext before record, as the agent uploads them); no manifest until it ends."""

    def __init__(self, src: Path, dst: Path, session_id: str) -> None:
        loc = src / "sessions" / f"{session_id}.json"
        self.prefix = json.loads(loc.read_text())["prefix"]
        self.src, self.dst = src / self.prefix, dst / self.prefix
        (dst / "sessions").mkdir(parents=True)
        shutil.copy(loc, dst / "sessions" / loc.name)
        self.dst.mkdir(parents=True)
        shutil.copy(self.src / "session.json", self.dst / "session.json")
        if (self.src / "keys").exists():
            shutil.copytree(self.src / "keys", self.dst / "keys")
        (self.dst / "seg").mkdir()
        self.count = len(list((self.src / "seg").glob("*.json")))

    def add(self, *indices: int) -> None:
        for i in indices:
            for ext in ("bin", "json"):
                shutil.copy(self.src / "seg" / f"{i:08d}.{ext}", self.dst / "seg" / f"{i:08d}.{ext}")


@pytest.fixture
def live(sessions_world: SessionsWorld, app: Flask, db: Database,
         tmp_path: Path) -> Iterator[tuple[LiveCopy, CountingStore]]:
    """The first recorded session, made to be still recording in a store of its own, read through a counter."""
    sw = sessions_world
    dst = tmp_path / "live-store"
    copy = LiveCopy(sw.store, dst, sw.session_id)
    counting = CountingStore(open_store(str(dst)))
    R._stores[str(dst)] = counting  # type: ignore[assignment]  # the process's opened store for this URL
    app.extensions["irms"].config = app.extensions["irms"].config.model_copy(update={"store_url": str(dst)})
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sw.session_id)).one()
        row.status, row.ended_at_us, row.manifest, row.verification = SessionStatus.RECORDING.value, None, "", ""
        row.verified_at_us = None
        s.execute(delete(SessionSegment).where(SessionSegment.session_pk == row.id))
    try:
        yield copy, counting
    finally:
        R._stores.pop(str(dst), None)


def segments_in(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^seg/(\d{8})\.ts$", text, re.M)]


def cached(db: Database, session_id: str) -> tuple[RecordingSession, list[tuple[int, str | None, str]]]:
    with db.session() as s:
        row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == session_id)).one()
        segs = [(x.idx, x.chain, x.cipher_sha256) for x in R.segments_of(s, row)]
        s.expunge(row)
    return row, segs


def test_live_refresh_reads_only_new_records(sessions_world: SessionsWorld, app: Flask, db: Database, now: FakeNow,
                                             live: tuple[LiveCopy, CountingStore]) -> None:
    copy, store = live
    sid = sessions_world.session_id
    assert copy.count >= 5
    c = app.test_client()
    sessions_world.login(c, "prosecutor")
    url = f"/replay/{sid}/live.m3u8"

    copy.add(0, 1)
    text = c.get(url).get_data(as_text=True)
    assert segments_in(text) == [0, 1] and "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    assert store.lists >= 1  # the first look: the document audit lists the session's objects

    # Two more segments reach the store: the next refresh reads exactly those two records and one miss.
    copy.add(2, 3)
    now.advance(0.3)
    store.reset()
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1, 2, 3]
    assert store.lists == 0
    assert store.gets == [f"{copy.prefix}seg/{i:08d}.json" for i in (2, 3, 4)], store.gets

    # Nothing new: one read (the miss); asked again within the refresh interval: none at all.
    now.advance(0.3)
    store.reset()
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1, 2, 3]
    assert (store.gets, store.lists) == ([f"{copy.prefix}seg/00000004.json"], 0)
    now.advance(0.1)
    store.reset()
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1, 2, 3]
    assert (store.gets, store.lists) == ([], 0)

    # What the incremental reads cached is what a full audit of the same store accepts, chain values included.
    row, segs = cached(db, sid)
    with db.session() as s:
        full_row = s.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        report = audit(store.inner, sid, R.options_for(s, full_row, ciphertexts=False))
    assert segs == [(r["index"], r["chain"], r["cipher_sha256"]) for r in report.records]
    assert row.verification == "unterminated" and row.segment_count == 4
    assert row.duration_us == sum(r["duration_us"] for r in report.records)

    # A live segment plays through replay's checked, decrypting route.
    resp = c.get(f"/replay/{sid}/seg/00000003.ts")
    assert resp.status_code == 200 and resp.mimetype == "video/mp2t" and resp.data[:1] == b"G"
    # The live page carries no playlist (a replay page does): the player follows the growing one.
    page = c.get(f"/replay/{sid}/live")
    assert page.status_code == 200 and b'data-src="/replay/' in page.data and b"data-playlist" not in page.data


def test_live_refresh_stops_at_a_record_out_of_place(sessions_world: SessionsWorld, app: Flask, db: Database,
                                                     now: FakeNow, live: tuple[LiveCopy, CountingStore]) -> None:
    copy, store = live
    sid = sessions_world.session_id
    c = app.test_client()
    sessions_world.login(c, "prosecutor")
    url = f"/replay/{sid}/live.m3u8"
    copy.add(0, 1)
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1]
    # Record 3 stored under the name of record 2 (signed by the station, but not segment 2): V07 at 2.
    shutil.copy(copy.src / "seg" / "00000002.bin", copy.dst / "seg" / "00000002.bin")
    shutil.copy(copy.src / "seg" / "00000003.json", copy.dst / "seg" / "00000002.json")
    copy.add(3)
    now.advance(0.3)
    store.reset()
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1]
    assert store.gets == [f"{copy.prefix}seg/00000002.json"]  # stopped there: nothing after it read
    row, segs = cached(db, sid)
    assert row.verification == "failed" and [i for i, _, _ in segs] == [0, 1]
    assert [(f["rule"], f["segment"]) for f in R.findings_of(row)] == [("V07", 2)]
    # Write-once objects: later refreshes read nothing more while it records.
    now.advance(0.3)
    store.reset()
    assert segments_in(c.get(url).get_data(as_text=True)) == [0, 1]
    assert (store.gets, store.lists) == ([], 0)


def test_live_refresh_on_postgres_and_sqlite_claims_once(sessions_world: SessionsWorld, db: Database, now: FakeNow,
                                                         live: tuple[LiveCopy, CountingStore]) -> None:
    """Two requests at the same moment (two workers): one reads the store, the other takes its result."""
    copy, store = live
    sid = sessions_world.session_id
    copy.add(0, 1, 2)
    with db.session() as s1, db.session() as s2:
        a = s1.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        b = s2.scalars(select(RecordingSession).where(RecordingSession.session_id == sid)).one()
        R.refresh_recording(s1, store, a, now())
        reads = len(store.gets) + store.lists
        R.refresh_recording(s2, store, b, now())
        assert len(store.gets) + store.lists == reads
        assert b.segment_count == a.segment_count == 3


def shared_markers(app: Flask, sw: SessionsWorld, now: FakeNow, server_markers: bool) -> tuple[dict[str, Any], str]:
    """A prosecutor marks a moment, shares the session (with or without their markers), marks another; the
    outside party opens the link: its markers.json and its page."""
    sid = sw.session_id
    c = app.test_client()
    sw.login(c, "prosecutor")
    assert c.get(f"/replay/{sid}").status_code == 200
    row_start = json.loads(c.get(f"/replay/{sid}/markers.json").data)["media_map"][0][1] * 1000
    token = csrf_token(c, f"/replay/{sid}")
    assert c.post(f"/replay/{sid}/markers", data={"at_us": str(row_start + 1_000_000), "label": "Bị can khai nhận",
                                                  "csrf_token": token}).status_code == 201
    form = {"party": "Luật sư Trần Văn B", "party_kind": "defence_counsel", "allow": "replay", "days": "7",
            "csrf_token": csrf_token(c, f"/sessions/{sid}")}
    if server_markers:
        form["server_markers"] = "y"
    resp = c.post(f"/sessions/{sid}/shares", data=form)
    assert resp.status_code == 201, resp.data[:500]
    code = re.search(r"/shared/#([A-Za-z0-9_-]+)", resp.get_data(as_text=True))
    assert code
    now.advance(60)
    assert c.post(f"/replay/{sid}/markers", data={"at_us": str(row_start + 2_000_000), "label": "Ghi chú sau chia sẻ",
                                                  "csrf_token": token}).status_code == 201
    party = app.test_client()
    resp = party.post("/shared/", data={"code": code.group(1), "csrf_token": csrf_token(party, "/shared/")})
    assert resp.status_code == 302
    share_url = resp.headers["Location"]
    page = party.get(share_url).get_data(as_text=True)
    data = party.get(share_url.rstrip("/") + "/markers.json")
    assert data.status_code == 200
    return json.loads(data.data), page


def test_shared_link_hides_the_prosecutors_markers(sessions_world: SessionsWorld, app: Flask, now: FakeNow) -> None:
    data, page = shared_markers(app, sessions_world, now, server_markers=False)
    assert data["server"] == [] and "investigator" in data
    assert "Bị can khai nhận" not in page and "Ghi chú sau chia sẻ" not in page
    assert 'id="marker-form"' not in page  # an outside party adds no markers


def test_share_that_allows_shows_markers_made_before_it(sessions_world: SessionsWorld, app: Flask,
                                                        now: FakeNow) -> None:
    data, page = shared_markers(app, sessions_world, now, server_markers=True)
    assert [m["label"] for m in data["server"]] == ["Bị can khai nhận"]  # not the note made after sharing
    assert set(data["server"][0]) == {"at_us", "label", "author", "unit"}
    assert 'id="marker-form"' not in page
