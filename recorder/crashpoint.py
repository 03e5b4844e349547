"""Named crash points: where the fault tests kill the agent with SIGKILL (kill -9).

Test-only. With IRMS_TEST_CRASH_AT=<point> (or <point>@<n>: the n-th time the point is
reached, counting from 1) the agent kills itself at that point, so that a test can stop it
exactly between two writes and prove the restart. Without the variable a crash point does
nothing. The points, in the order a session passes them:

  start.outbox_written    header and locator durable in the outbox, journal not yet told
  start.committed         session row + header and locator queued, one transaction
  key.outbox_written      a resumed session's key object durable in the outbox, not counted
  key.committed           key counted + key object queued, one transaction
  seal.outbox_written     a segment's ciphertext and record in the outbox, not sealed in the journal
  seal.committed          segment sealed + its objects queued, one transaction
  close.outbox_written    the manifest durable in the outbox, session not yet closed
  close.committed         session closed + manifest queued, one transaction
  upload.before_put       the uploader is about to put an object into the store
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "IRMS_TEST_CRASH_AT"

_counts: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if IRMS_TEST_CRASH_AT names this point (and its count is reached)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition("@")
    if point != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        reached = _counts[name] >= (int(nth) if nth else 1)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
