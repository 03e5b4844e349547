"""V14-V15 (custodian key only): each segment decrypts, matches its record and decodes."""

from __future__ import annotations

import hashlib

from evidence.crypto import open_segment
from evidence.errors import DecryptionError
from verifier.media import probe_media
from verifier.rules import Finding
from verifier.rules.parsed import ParsedSession


def v14_decrypts(s: ParsedSession, i: int, cipher: bytes) -> list[Finding]:
    """The data key unwraps, the segment decrypts, its plain SHA-256 and size are the record's."""
    rec = s.records[i]
    key = s.data_keys.get(rec["key_index"])
    if key is None:
        return [Finding("V14", f"no data key {rec['key_index']}", i)]
    if isinstance(key, str):
        return [Finding("V14", f"data key {rec['key_index']} cannot be unwrapped: {key}", i)]
    try:
        plain = open_segment(key, s.session_id, i, cipher)
    except DecryptionError:
        return [Finding("V14", "segment does not decrypt", i)]
    if len(plain) != rec["plain_size"] or hashlib.sha256(plain).hexdigest() != rec["plain_sha256"]:
        return [Finding("V14", "decrypted bytes differ from the record's plain hash", i)]
    s.plain[i] = plain
    return []


def v15_decodes(s: ParsedSession, i: int) -> list[Finding]:
    """ffprobe decodes every frame of every stream without an error line; its container duration is
    duration_us ± 0.25 s."""
    plain = s.plain.pop(i, None)
    if plain is None:
        return []  # V14 did not hand over plain bytes: already a finding
    rec = s.records[i]
    ok, duration, err = probe_media(plain)
    if not ok:
        return [Finding("V15", f"does not decode: {err}", i)]
    if abs(duration - rec["duration_us"]) > s.tolerances.duration_us:
        return [Finding("V15", f"media lasts {duration / 1e6:.3f} s, the record says "
                               f"{rec['duration_us'] / 1e6:.3f} s", i)]
    return []
