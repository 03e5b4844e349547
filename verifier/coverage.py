"""`irms-verify coverage DIR`: recompute the coverage figure of a bundle offline, with the server's own pure
function (evidence/coverage.py, evidence/coverage_bundle.py), and say what it rests on."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from evidence.coverage_bundle import BundleError, Result, recompute
from verifier.errors import VerificationError
from verifier.trust import load_server_key


def _pct(x: str | None) -> str:
    return "n/a" if x is None else f"{100 * float(x):.2f} %"


def report_lines(res: Result, key_given: bool) -> list[str]:
    m, fig = res.manifest, res.figure
    nat = fig["national"]
    out = [f"coverage {m['from']}..{m['to']} ({m['timezone']}): room uptime {_pct(nat['room_uptime'])} over "
           f"{nat['rooms']} rooms in {nat['facilities']} facilities",
           f"rests on {res.verified} heartbeats from {res.stations} stations verified against their enrolled keys; "
           f"{res.refused_total} refused" + (": " + ", ".join(f"{n} {code}" for code, n in sorted(res.refused.items()))
                                             if res.refused else ""),
           f"{res.runs_credited} run claims credited, {sum(res.runs_refused.values())} refused"
           + (": " + ", ".join(f"{n} {code}" for code, n in sorted(res.runs_refused.items()))
              if res.runs_refused else ""),
           f"bundle signed by server key {res.server_key_id}" + (" (the key given)" if key_given else
                                                                  " (carried in the bundle: compare it with the "
                                                                  "server's published key, or pass --server-key)")]
    out.append("per day (room uptime, facilities equipped):")
    out += [f"  {d['day']}  {_pct(d['room_uptime']):>9}  {_pct(d['facility_equipped']):>9}" for d in nat["days"]]
    out.append("per province (room uptime over the period):")
    out += [f"  {code:<6} {_pct(p['room_uptime']):>9}  ({p['rooms']} rooms)" for code, p in fig["provinces"].items()]
    out += [f"refused: {line}" for line in res.examples]
    if res.differences:
        out.append(f"NOT equal to the server's figure in {len(res.differences)} places:")
        out += [f"  {d}" for d in res.differences[:50]]
    else:
        out.append("equal to the server's figure for the same days")
    return out


def cmd_coverage(args: argparse.Namespace) -> int:
    key = load_server_key(args.server_key)
    try:
        res = recompute(Path(args.bundle), key, workers=max(args.workers, 1))
    except BundleError as err:
        raise VerificationError(f"coverage bundle {args.bundle} refused: {err}") from None
    if args.json:
        print(json.dumps(res.as_json(), ensure_ascii=False))
    else:
        print("\n".join(report_lines(res, key is not None)))
    failed = bool(res.differences) or (args.strict and (res.refused_total > 0 or bool(res.runs_refused)))
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("coverage", help="recompute a coverage evidence bundle's figure offline and check every "
                                        "heartbeat's signature")
    p.add_argument("bundle", help="the folder `irms-web coverage export` wrote")
    p.add_argument("--server-key", help="the server's published audit public key (PEM) the manifest must be signed "
                                        "with (default: the key the bundle carries, named in the output)")
    p.add_argument("--strict", action="store_true", help="exit 1 also when any heartbeat or run claim was "
                                                                      "refused")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes checking signatures (default: one per CPU)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_coverage)
