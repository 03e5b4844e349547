"""`irms-verify tombstone FILE`: check offline that a disposal's tombstone (evidence/tombstone.py) is whole and
signed by the server's audit key, and say what was destroyed, when, under which policy and on whose approval."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from evidence.canonical import parse_json_object
from evidence.errors import FormatError, SignatureError
from evidence.tombstone import verify_tombstone
from verifier.errors import VerificationError
from verifier.trust import load_server_key


def _when(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def report_lines(doc: dict[str, Any], key_id: str, key_given: bool) -> list[str]:
    p = doc["policy"]
    period = " ".join(x for x in (f"{p['years']} years" if p["years"] else "", f"{p['days']} days" if p["days"]
                                  else "") if x) or "0 days"
    return [
        f"tombstone of session {doc['session_id']} ({doc['site']}/{doc['room']}, station {doc['station_id']}): "
        f"{doc['objects']} objects, {doc['segment_count']} segments, manifest SHA-256 {doc['manifest_sha256'] or '-'}",
        f"disposed {_when(doc['disposed_at_us'])}; retained until {_when(doc['retain_until_us'])} under policy "
        f"{p['id']} ({period} from {'the final judgment' if p['anchor'] == 'final' else 'the recording'}, unit "
        f"{p['unit'] or 'every unit'}, category {p['category'] or 'any'}, {p['mode']})",
        f"proposed by {doc['proposed']['by']} {_when(doc['proposed']['at_us'])}; approved by "
        + ", ".join(f"{a['by']} {_when(a['at_us'])}" for a in doc["approved"]),
        f"signed by server key {key_id}" + (" (the key given)" if key_given else
                                            " (carried in the tombstone: compare it with the server's published "
                                            "key, or pass --server-key)"),
    ]


def cmd_tombstone(args: argparse.Namespace) -> int:
    key = load_server_key(args.server_key)
    try:
        raw = Path(args.file).read_bytes()
    except OSError as err:
        raise VerificationError(f"tombstone {args.file} cannot be read: {err.strerror}") from None
    try:
        doc = parse_json_object(raw, f"tombstone {args.file}")
        key_id = verify_tombstone(doc, key, f"tombstone {args.file}")
    except (FormatError, SignatureError) as err:
        raise VerificationError(str(err)) from None
    if args.json:
        print(json.dumps({"ok": True, "server_key_id": key_id, "key_given": key is not None, "tombstone": doc},
                         ensure_ascii=False))
    else:
        print("\n".join(report_lines(doc, key_id, key is not None)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("tombstone", help="check a disposal's tombstone: whole, and signed by the server's audit key")
    p.add_argument("file", help="the tombstone (JSON), as the server's disposals page or the store gives it")
    p.add_argument("--server-key", help="the server's published audit public key (PEM) it must be signed with "
                                        "(default: the key the tombstone carries, named in the output)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_tombstone)
