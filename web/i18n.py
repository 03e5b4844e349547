"""Vietnamese first, English available (R22): gettext catalogues, and local time display.

Message ids are English text; the Vietnamese translations are in web/translations/vi/LC_MESSAGES/messages.po
(edited with standard tools, refreshed by `scripts/i18n`, see docs/operations.md). Reasons from
`web.coverage` and other computed words (states, kinds) are translated from their codes: `CODES` gives a
code its English text, which is the message id; a code without one is its own message id (listed in
`web.vocabulary` so that extraction keeps it).
"""

from __future__ import annotations

import datetime as dt
import gettext
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

from evidence import catalogue
from web.coverage import Reason

log = logging.getLogger(__name__)

LANGUAGES = ("vi", "en")
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def N_(message: str) -> str:
    """Marks a message id for extraction where it is defined, not where it is translated."""
    return message


CODES: dict[str, str] = {
    # coverage reasons (web.coverage.Reason.code) and facility types
    "no_station": N_("no recording station enrolled"),
    "station_revoked": N_("station {station} is revoked"),
    "never_reported": N_("station {station} never reported"),
    "silent": N_("station {station} silent for {minutes} min"),
    "probe_failed": N_("device {device} failed {check}: {detail}"),
    "probe_missing": N_("no {kind} probe result"),
    "store_unreachable": N_("object store unreachable"),
    "disk_unknown": N_("free disk unknown"),
    "disk_low": N_("disk {free_gib} GiB free, below {min_gib} GiB"),
    "clock_unknown": N_("clock offset unknown"),
    "clock_off": N_("clock off by {offset_s} s (tolerance {tolerance_s} s)"),
    "no_rooms": N_("no registered interrogation room"),
    "selftest_missing": N_("no daily self-test result"),
    "selftest_failed": N_("the latest self-test failed"),
    "selftest_stale": N_("the latest passing self-test is {hours} h old"),
    "detention_centre": N_("Detention centre"),
    "temporary_detention": N_("Temporary detention house"),
    "investigation_office": N_("Investigation office"),
    "procuracy": N_("Procuracy"),
}
EN_REASONS = CODES
"""The former name of `CODES`."""


STATUS_TEXT = {400: N_("The request is not valid."), 401: N_("Log in first."),
               403: N_("Your role may not use this page."), 404: N_("Not found."), 405: N_("The request is not valid."),
               409: N_("This conflicts with what is already recorded."), 413: N_("The request is not valid."),
               429: N_("Too many attempts; wait a moment.")}
"""What an error page says first, in the page's language; the error's own (technical) message follows."""


def status_text(status: int) -> str:
    return STATUS_TEXT.get(status, N_("The server cannot do this right now."))


MISSES = catalogue.Misses("web")


def catalogue_for(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (identity for English)."""
    return catalogue.load(TRANSLATIONS, lang) if lang != "en" else gettext.NullTranslations()


def message_id(message: str) -> str:
    """The message id of a text or a code (`no_station` -> "no recording station enrolled")."""
    return CODES.get(message, message)


def is_translated(message: str, lang: str = "vi") -> bool:
    return lang == "en" or catalogue.has(catalogue_for(lang), message_id(message))


def translate(message: str, lang: str, **params: object) -> str:
    """`message` (English text or a code) in `lang`, with `{name}` parameters filled in."""
    return catalogue.translate(TRANSLATIONS, MISSES, message_id(message), lang, **params)


# What a failed probe means, by check: the station reports its detail in English, and the Vietnamese pages
# say what the check means instead.
CHECKS = {
    "camera.frames": N_("the camera sends no picture"),
    "camera.size": N_("the picture has the wrong size"),
    "camera.black": N_("the picture is black"),
    "camera.frozen": N_("the picture is frozen"),
    "camera.covered": N_("the lens is covered"),
    "camera.focus": N_("the picture is out of focus"),
    "mic.samples": N_("the microphone sends no sound"),
    "mic.silent": N_("the microphone is silent"),
    "mic.clipping": N_("the sound is distorted (too loud)"),
    "disk.free": N_("the disk is nearly full"),
    "store.reachable": N_("the store cannot be reached"),
    "clock.offset": N_("the clock is off"),
}


def reason_text(r: Reason, lang: str) -> str:
    params = dict(r.params)
    if lang != "en" and r.code == "probe_failed" and str(params.get("check")) in CHECKS:
        params["detail"] = translate(CHECKS[str(params["check"])], lang)
    try:
        return translate(r.code, lang, **params)
    except (KeyError, IndexError):
        return r.code


def local_time(at_us: int | None, tz_name: str, with_seconds: bool = False) -> str:
    """dd/mm/yyyy HH:MM (24-hour) in the display time zone; UTC is what is stored."""
    if at_us is None:
        return "—"
    t = dt.datetime.fromtimestamp(at_us / 1_000_000, ZoneInfo(tz_name))
    return t.strftime("%d/%m/%Y %H:%M:%S" if with_seconds else "%d/%m/%Y %H:%M")


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


# The IT desk: dashboard, drill-down, room and station pages, charts (web/dashboard.py, web/rooms.py).
REASON_KINDS: dict[str, str] = {
    "no_station": "no station enrolled",
    "station_revoked": "station revoked",
    "never_reported": "station never reported",
    "silent": "station silent",
    "probe_failed": "device failing",
    "probe_missing": "probe result missing",
    "store_unreachable": "store unreachable",
    "disk_unknown": "free disk unknown",
    "disk_low": "disk low",
    "clock_unknown": "clock offset unknown",
    "clock_off": "clock off",
    "selftest_missing": "no self-test",
    "selftest_failed": "self-test failed",
    "selftest_stale": "self-test too old",
}
