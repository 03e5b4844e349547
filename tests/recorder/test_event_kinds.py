"""Every event kind and interruption cause the recorder writes is in the closed lists of the format
(docs/evidence-format.md): a kind outside them would make an honest session fail V10."""

from __future__ import annotations

import ast
from pathlib import Path

from evidence.formats import EVENT_KINDS, INTERRUPTION_CAUSES

RECORDER = Path(__file__).resolve().parents[2] / "recorder"
WRITERS = {"_event": EVENT_KINDS, "_sink": EVENT_KINDS, "add_event": EVENT_KINDS,
           "open_interruption": INTERRUPTION_CAUSES}


def written() -> list[tuple[str, int, str, str]]:
    """(file, line, writer, kind) of every literal kind passed to a writer; f-strings expanded by hand below."""
    out = []
    for path in sorted(RECORDER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITERS
                    and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant)):
                out.append((path.name, node.lineno, node.func.attr, str(node.args[2].value)))
    return out


def test_every_kind_the_recorder_writes_is_in_the_closed_lists() -> None:
    found = written()
    assert len(found) > 15
    wrong = [(f, line, kind) for f, line, writer, kind in found if kind not in WRITERS[writer]]
    assert wrong == []


def test_held_object_events_are_in_the_closed_list() -> None:
    # journal.hold writes f"object_{state}" for the two states an outbox object can be held in.
    assert {"object_damaged", "object_quarantined"} <= set(EVENT_KINDS)
