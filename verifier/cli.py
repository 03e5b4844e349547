"""irms-verify: prove a recording complete and untouched, offline, with public keys only.

Exit codes: 0 verified; 1 a rule failed (the line names it, e.g. V07); 2 bad
arguments, key or input; 3 store unreachable (nothing is ever created); 4
unterminated (no manifest, V09: only the proven segments are vouched for, the
session is not complete); 5 the store answers but holds no object of that session.
`coverage` exits 1 when the bundle is refused (manifest signature, a file changed after signing) or its
recomputed figure differs from the server's (with --strict also when a heartbeat was refused).
`seal` exits 1 also when the seal does not match the stored manifest; `annex`
refuses (1, or 4 when unterminated) a session that does not verify, unless --force.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import traceback
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from evidence.errors import IrmsError
from evidence.keys import load_custodian_private, save_private_key, save_public_key
from storage.base import ObjectStore
from storage.errors import StoreConfigError
from storage.url import open_store
from verifier.annex import build_annex, check_seal, load_session_documents, parse_seal
from verifier.errors import VerificationError
from verifier.export import export_session, is_export, rebuild_session
from verifier.session import Options, Report, audit, locate, verify
from verifier.trust import TrustStore, trust_dir

EXIT_UNTERMINATED = 4


def _open(args: argparse.Namespace) -> tuple[ObjectStore, Options]:
    """The store (opened read-only: nothing is created) and the trust anchors, built once here."""
    store_path = Path(args.store)
    local = TrustStore.from_dir(Path(args.trust) if args.trust else trust_dir())
    carried: TrustStore | None = None
    if "://" not in args.store and is_export(store_path):
        store = open_store(str(store_path / "objects"), create=False)
        carried = TrustStore.from_dir(store_path / "trust")
    else:
        store = open_store(args.store, create=False)
    custodian: X25519PrivateKey | None = None
    if getattr(args, "custodian_key", None):
        custodian = load_custodian_private(Path(args.custodian_key))
    witnessed: list[tuple[int, str]] = []
    if getattr(args, "witness", None):
        try:
            data = json.loads(Path(args.witness).read_text())
            witnessed = [(int(w["index"]), str(w["chain"])) for w in data]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StoreConfigError(f"witness file {args.witness} is unreadable: {err}") from None
    opts = Options(trust=local, carried=carried, custodian=custodian, witnessed=witnessed,
                   media=not getattr(args, "no_media", False))
    return store, opts


def _emit(report: Report, args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        if report.trust_line():
            print(report.trust_line())
        print(report.summary())
        for f in report.findings:
            print(f"  {f}")
    if report.status == "verified":
        return 0
    return EXIT_UNTERMINATED if report.status == "unterminated" else 1


def cmd_session(args: argparse.Namespace) -> int:
    store, opts = _open(args)
    return _emit(audit(store, args.session_id, opts, fail_fast=True), args)


def cmd_audit(args: argparse.Namespace) -> int:
    store, opts = _open(args)
    return _emit(audit(store, args.session_id, opts, fail_fast=False), args)


def cmd_export(args: argparse.Namespace) -> int:
    store, opts = _open(args)
    labels = args.label or ["case-file", "procuracy-file"]
    out = Path(args.out)
    results = []
    for label in labels:
        target = out / label if len(labels) > 1 else out
        results.append(export_session(store, args.session_id, opts, target, label, dt.datetime.now(dt.UTC)))
        print(f"exported {label} to {target}") if not args.json else None
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    store, opts = _open(args)
    if opts.custodian is None:
        raise StoreConfigError("rebuild needs --custodian-key (the custodian's private key)")
    opts.media = False
    report = verify(store, args.session_id, opts) if not args.force else audit(store, args.session_id, opts)
    rebuild_session(store, report, opts.custodian, Path(args.out))
    print(f"rebuilt {report.segments} segments of session {args.session_id} into {args.out}")
    return 0


def cmd_annex(args: argparse.Namespace) -> int:
    store, opts = _open(args)
    opts.media = False
    report = audit(store, args.session_id, opts, fail_fast=True)
    if report.status != "verified" and not args.force:
        print(report.summary(), file=sys.stderr)
        print("irms-verify: no annex for a session that does not verify (--force to print it anyway)",
              file=sys.stderr)
        return EXIT_UNTERMINATED if report.status == "unterminated" else 1
    header, manifest, records = load_session_documents(store, report.prefix or locate(store, args.session_id))
    now_us = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    pdf = build_annex(header, manifest, records, generated_at_us=now_us)
    Path(args.out).write_bytes(pdf)
    print(f"annex of session {args.session_id} ({report.status}) written to {args.out}")
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    seal = parse_seal(args.seal)
    args.session_id = seal.session_id
    store, opts = _open(args)
    prefix = locate(store, seal.session_id)
    check_seal(store, seal, prefix)
    if not args.json:
        print(f"seal matches the stored manifest of session {seal.session_id} (SHA-256 {seal.manifest_sha256})")
    return _emit(audit(store, seal.session_id, opts, fail_fast=True), args)


def cmd_custodian_keygen(args: argparse.Namespace) -> int:
    key = X25519PrivateKey.generate()
    passphrase = None
    if args.passphrase_env:
        import os

        value = os.environ.get(args.passphrase_env)
        if not value:
            raise StoreConfigError(f"environment variable {args.passphrase_env} is empty")
        passphrase = value.encode()
    save_private_key(Path(args.private), key, passphrase)
    save_public_key(Path(args.public), key.public_key())
    print(f"custodian key pair: private {args.private}, public {args.public}")
    return 0


def _common(p: argparse.ArgumentParser, media: bool = True) -> None:
    p.add_argument("session_id")
    p.add_argument("--store", required=True, help="a directory, an export folder, or s3://host:port/bucket")
    p.add_argument("--trust", help="trust store directory (stations/<id>.pub); default $IRMS_HOME/trust. "
                                   "An export folder's own trust/ is read too; where both know a station they "
                                   "must agree")
    p.add_argument("--custodian-key", help="custodian private key: also decrypt and decode every segment")
    p.add_argument("--witness", help="JSON list of {index, chain} heads witnessed by the server")
    if media:
        p.add_argument("--no-media", action="store_true", help="skip decoding even with a custodian key")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irms-verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("session", help="verify a session; stops at the first failed rule")
    _common(p)
    p.set_defaults(func=cmd_session)
    p = sub.add_parser("audit", help="check every rule and list every finding")
    _common(p)
    p.set_defaults(func=cmd_audit)
    p = sub.add_parser("export", help="write sealed copies (case file, procuracy file) that verify offline")
    _common(p)
    p.add_argument("--out", required=True, help="folder to create")
    p.add_argument("--label", action="append", help="copy label (repeatable; default: case-file, procuracy-file)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("rebuild", help="decrypt a verified session into one playable MP4")
    _common(p, media=False)
    p.add_argument("--out", required=True, help="the MP4 file to write")
    p.add_argument("--force", action="store_true", help="rebuild even if verification fails")
    p.set_defaults(func=cmd_rebuild)
    p = sub.add_parser("annex", help="print the annex to the minutes (PDF, Vietnamese) with the QR seal")
    _common(p)
    p.add_argument("--out", required=True, help="the PDF file to write")
    p.add_argument("--force", action="store_true", help="write the annex even if verification fails")
    p.set_defaults(func=cmd_annex)
    p = sub.add_parser("seal", help="check a seal from an annex (IRMS1:<session>:<sha256>) against the store, "
                                    "then verify the session; exit 0 only if both hold")
    p.add_argument("seal", help="the seal text, as the annex's QR code holds it")
    p.add_argument("--store", required=True, help="a directory, an export folder, or s3://host:port/bucket")
    p.add_argument("--trust", help="trust store directory (stations/<id>.pub); default $IRMS_HOME/trust")
    p.add_argument("--custodian-key", help="custodian private key: also decrypt and decode every segment")
    p.add_argument("--witness", help="JSON list of {index, chain} heads witnessed by the server")
    p.add_argument("--no-media", action="store_true", help="skip decoding even with a custodian key")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_seal)
    from verifier import coverage
    coverage.register(sub)
    p = sub.add_parser("custodian-keygen", help="make a custodian X25519 key pair")
    p.add_argument("--private", required=True)
    p.add_argument("--public", required=True)
    p.add_argument("--passphrase-env", help="encrypt the private key with the passphrase in this variable")
    p.set_defaults(func=cmd_custodian_keygen)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except VerificationError as err:
        if args.debug:
            traceback.print_exc()
        print(f"irms-verify: FAILED: {err}", file=sys.stderr)
        return 1
    except IrmsError as err:
        if args.debug:
            traceback.print_exc()
        print(f"irms-verify: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
