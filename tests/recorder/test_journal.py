"""The journal: indices are given once, in order, and survive reopening."""

from __future__ import annotations

from pathlib import Path

from recorder.journal import Journal, Queued, RunRow, SessionRow


def test_capture_is_idempotent_and_ordered(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.add_session(SessionRow("s1", "a/b/s1/", "{}", "recording", 1, None, 0, "00" * 32, 1))
    j.add_run(RunRow("s1", 0, str(tmp_path), 1, None, None))
    assert j.capture("s1", 0, "seg000000.ts", 10, 2) == 0
    assert j.capture("s1", 0, "seg000000.ts", 10, 2) is None  # seen again after a restart
    assert j.capture("s1", 0, "seg000001.ts", 12, 2) == 1
    j.mark_sealed("s1", 0, "{}", "11" * 32, [Queued("a/b/s1/seg/00000000.bin", "/x", "ab" * 32)])
    j.close()
    j2 = Journal(tmp_path / "j.db")
    assert j2.session("s1").next_index == 1 and j2.session("s1").chain_head == "11" * 32
    assert [s.state for s in j2.segments("s1")] == ["sealed", "captured"]
    assert j2.pending_objects() == [("a/b/s1/seg/00000000.bin", "/x", "ab" * 32)]
    assert [s.session_id for s in j2.open_sessions()] == ["s1"]


def test_ciphertext_queued_without_a_digest_is_checked_against_its_record(tmp_path: Path) -> None:
    """A journal from before objects kept their SHA-256: a ciphertext's expected digest is its record's."""
    import sqlite3

    old = sqlite3.connect(tmp_path / "j.db")
    old.executescript("CREATE TABLE objects (name TEXT PRIMARY KEY, session_id TEXT NOT NULL, path TEXT NOT NULL,"
                      " seq INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
                      " last_error TEXT)")
    old.close()
    j = Journal(tmp_path / "j.db")
    j.add_session(SessionRow("s1", "a/b/s1/", "{}", "recording", 1, None, 0, "00" * 32, 1))
    j.add_run(RunRow("s1", 0, str(tmp_path), 1, None, None))
    j.capture("s1", 0, "seg000000.ts", 10, 2)
    seg, rec = "a/b/s1/seg/00000000.bin", "a/b/s1/seg/00000000.json"
    j.mark_sealed("s1", 0, '{"cipher_sha256": "' + "cd" * 32 + '"}', "11" * 32,
                  [Queued(seg, "/x", "ab" * 32), Queued(rec, "/y", "ef" * 32)])
    j.db.execute("UPDATE objects SET sha256=NULL")
    assert j.pending_objects() == [(seg, "/x", "cd" * 32), (rec, "/y", None)]
