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


# --- the prosecutor's desk (issue 14): session page, player, sealed copies as jobs, sessions by case ---------

EVENT_WORDS = {
    "start": "recording started", "capture_stop": "capture stopped", "pause": "paused", "resume": "resumed",
    "device_lost": "device lost", "store_full": "disk full", "health": "device problem",
    "health_ok": "device working again", "salvaged": "segment salvaged", "recovered": "recovered after a crash",
    "clock_step": "clock corrected", "clock_offset": "clock offset measured", "torn_segment": "torn segment",
    "partial_kept": "partial segment kept", "segment_lost": "segment lost", "object_kept": "object kept",
    "object_damaged": "object damaged", "object_quarantined": "object quarantined",
    "journal_rebuilt": "journal rebuilt", "marker": "marker", "witness_start": "live viewer joined",
    "witness_stop": "live viewer left", "end": "recording ended",
}
"""Session event kinds (evidence.formats.EVENT_KINDS) in words; translated like any message."""

END_REASON_WORDS = {
    "stopped": "ended by the investigator", "duration_reached": "planned duration reached",
    "recovered_after_crash": "closed after a station crash", "device_failure": "devices failed",
}
"""End reasons (evidence.formats.END_REASONS) in words."""

CAUSE_WORDS = {
    "pause": "pause", "device_lost": "device lost", "crash": "station crash", "power": "power cut",
    "store_full": "disk full", "encoder_stall": "encoder stalled",
}
"""Interruption causes (evidence.formats.INTERRUPTION_CAUSES) in words."""

RULE_WORDS = {
    "V01": "the session header is missing or not valid",
    "V02": "the station key is not the trusted one",
    "V03": "the session header's signature does not match",
    "V04": "a segment record is altered or not signed by the station",
    "V05": "an object is missing or does not belong",
    "V06": "a segment's content was altered or replaced",
    "V07": "the chain of segments is broken",
    "V08": "a segment is missing",
    "V09": "the session has no closing manifest yet",
    "V10": "the closing manifest is altered or not valid",
    "V11": "the manifest does not close the chain (segments cut off)",
    "V12": "a data key object is missing or altered",
    "V13": "the history differs from what the server witnessed while recording",
    "V14": "a segment does not decrypt to its recorded content",
    "V15": "a segment's picture or sound does not decode",
    "V16": "time is missing between segments and is not explained",
    "V17": "the session's span is not covered by recording and declared interruptions",
    "V18": "the time-stamp of the manifest does not verify",
    "V19": "a time-stamp of a chain head does not verify",
}
"""The verifier's rules (docs/verifier-rules.md) in words a prosecutor reads."""

ACTION_WORDS = {
    "session.view": "viewed", "session.replay": "replayed", "session.live": "watched live",
    "session.marker": "marker added", "session.annex": "annex printed",
    "session.case_corrected": N_("case number corrected"),
    "session.export_requested": "sealed copy asked for", "session.export": "sealed copy made",
    "session.export_failed": "sealed copy failed", "session.export_download": "sealed copy downloaded",
    "custodian.key_use": "data key used", "share.create": "shared", "share.revoke": "share revoked",
    "share.open": "share opened", "share.replay": "replayed by the outside party",
    "share.export": "sealed copy downloaded by the outside party",
}
"""Custody actions (audit entries about one session) in words."""

EN_REASONS.update({
    "no_policy": "no retention policy", "awaiting_outcome": "awaiting the final judgment",
    "retention_ended": "retention ended", "disposal": "being disposed of",
    # sealed copies' job states and steps
    "queued": "waiting", "running": "being built", "done": "sealed", "expired": "removed after its keeping time",
    "checking": "checking the documents", "copying": "copying, each segment checked", "sealing": "sealing",
})



def duration(us: int | None) -> str:
    """h:mm:ss (hours not capped at 24); — when unknown."""
    if us is None:
        return "—"
    total = max(int(us), 0) // 1_000_000
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def event_text(kind: str, lang: str) -> str:
    return translate(EVENT_WORDS.get(kind, kind), lang)


def end_reason_text(reason: str, lang: str) -> str:
    return translate(END_REASON_WORDS.get(reason, reason), lang) if reason else ""


def cause_text(cause: str, lang: str) -> str:
    return translate(CAUSE_WORDS.get(cause, cause), lang)


def action_text(action: str, lang: str) -> str:
    return translate(ACTION_WORDS.get(action, action), lang)


def event_detail_text(kind: str, detail: str, lang: str) -> str:
    """An event's detail; the codes some kinds carry (capture_stop, end: an end reason or `pause`) in words."""
    if kind in ("capture_stop", "end") and (detail in END_REASON_WORDS or detail in ("pause", "duration_reached")):
        return end_reason_text(detail, lang) if detail in END_REASON_WORDS else cause_text(detail, lang)
    return detail


def rule_text(rule: str, lang: str) -> str:
    """`V06: a segment's content was altered or replaced`, in the page's language."""
    words = RULE_WORDS.get(rule)
    return f"{rule}: {translate(words, lang)}" if words else rule
