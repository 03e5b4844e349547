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
