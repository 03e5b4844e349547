"""Gettext catalogues for the pages: the web's (web/translations) and the station screen's
(recorder/translations), one `.po` per language that translators edit with standard tools.

The `.mo` a `.po` compiles to is not kept in git: it is built by `scripts/i18n compile` (run by
`make setup`) or, when missing or older than its `.po`, here at first use, written beside the
`.po` when the directory is writable and kept in memory otherwise. Message ids are English text;
English pages use them as they are.
"""

from __future__ import annotations

import gettext
import io
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "messages"

_lock = threading.Lock()
_loaded: dict[tuple[Path, str], gettext.NullTranslations] = {}


def po_path(directory: Path, lang: str) -> Path:
    return directory / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compile_po(po: Path) -> bytes:
    """The `.mo` bytes of one `.po` (fuzzy entries left out, as msgfmt does)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f, abort_invalid=True)
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mo-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_compiled(directory: Path) -> list[Path]:
    """Compile every `.po` under `directory` whose `.mo` is missing or older; returns the `.mo` written.

    A read-only directory (an installed package) is left as it is: `load` then compiles in memory.
    """
    written: list[Path] = []
    for po in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        data = compile_po(po)
        try:
            _write_atomically(mo, data)
        except OSError as err:
            log.info("cannot write %s (%s): the catalogue is compiled in memory", mo, err)
            continue
        written.append(mo)
    return written


def load(directory: Path, lang: str) -> gettext.NullTranslations:
    """The catalogue of `lang` under `directory` (cached); identity when there is none (English)."""
    key = (directory, lang)
    found = _loaded.get(key)
    if found is not None:
        return found
    with _lock:
        found = _loaded.get(key)
        if found is not None:
            return found
        po = po_path(directory, lang)
        if not po.exists():
            found = gettext.NullTranslations()
        else:
            ensure_compiled(directory)
            mo = po.with_suffix(".mo")
            fresh = mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime
            found = gettext.GNUTranslations(io.BytesIO(mo.read_bytes() if fresh else compile_po(po)))
        _loaded[key] = found
        return found


def forget() -> None:
    """Drop the cached catalogues (after `scripts/i18n compile` in a running test process)."""
    with _lock:
        _loaded.clear()


class Misses:
    """Message ids a page asked for in a language whose catalogue does not translate them (the page shows
    English there). Logged once each; tests read `seen` to fail a page that shows an untranslated id."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            if message in self.seen or len(self.seen) >= 10_000:
                return
            self.seen.add(message)
        log.warning("no translation in the %s catalogue for %r (scripts/i18n, docs/operations.md)", self.name,
                    message[:200])


def translate(directory: Path, misses: Misses, message: str, lang: str, **params: object) -> str:
    """`message` (an English id) in `lang` from the catalogue under `directory`, `{name}` parameters filled in."""
    text = message
    if lang != "en" and message:
        translations = load(directory, lang)
        if has(translations, message):
            text = translations.gettext(message)
        else:
            misses.add(message)
    return text.format(**params) if params else text


def has(translations: gettext.NullTranslations, message: str) -> bool:
    """Whether the catalogue holds a translation for `message` (not the id given back as it is)."""
    catalog = getattr(translations, "_catalog", None)
    return isinstance(catalog, dict) and bool(catalog.get(message))


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction only"
    """Marks a message id for extraction where it is defined, not where it is translated."""
    return message
