"""What a page shows a person, for the translation tests: its visible text (no markup, scripts, styles or
the closed "details" of raw technical text) and the English message ids of a catalogue found in it."""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

HIDDEN = re.compile(r"<(script|style|details|title)\b.*?</\1>", re.S | re.I)
TAG = re.compile(r"<[^>]+>")


def visible_text(page: str) -> str:
    """The text of an HTML page as a reader sees it (closed <details> left out: the raw detail behind a toggle)."""
    body = HIDDEN.sub(" ", page)
    return re.sub(r"\s+", " ", html.unescape(TAG.sub(" ", body)))


@cache
def translated_ids(po: Path) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Message ids of `po` whose translation differs from the id, each with a pattern that finds it as words."""
    with po.open("rb") as f:
        catalog = read_po(f)
    found = []
    for m in catalog:
        if not m.id or not isinstance(m.id, str) or not m.string or m.string == m.id:
            continue
        # {name} parameters match any text; the rest literally, as whole words.
        parts = [re.escape(p) if i % 2 == 0 else r".{1,80}?" for i, p in enumerate(re.split(r"\{(\w+)\}", m.id))
                 if i % 2 == 0 or p]
        # Whole words, and not a value in "key=value" technical detail (an audit entry's parameters).
        pattern = r"(?<![\w=-])" + "".join(parts) + r"(?![\w=-])"
        found.append((m.id, re.compile(pattern)))
    return tuple(found)


def untranslated(page_text: str, po: Path) -> list[str]:
    """The English message ids (translated in `po`) that a Vietnamese page still shows."""
    return [msgid for msgid, pattern in translated_ids(po) if pattern.search(page_text)]
