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
import os
import sys
import traceback
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from evidence import sealed_key
from evidence.crypto import KeyUnwrapper, Unwrapper
from evidence.custody_link import ENV_REFUSAL, PASSPHRASE_ENV, SocketUnwrapper
from evidence.durable import write_durable
from evidence.errors import IrmsError, KeyError_
from evidence.keys import load_custodian_private, save_private_key, save_public_key
from storage.base import ObjectStore
from storage.errors import StoreConfigError
from storage.url import open_store
from verifier.annex import build_annex, check_seal, load_session_documents, parse_seal
from verifier.custody import RecordedUnwrapper, default_log
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
    custodian = _custodian(args)
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


def _passphrase(args: argparse.Namespace, prompt: str, *, confirm: bool = False) -> bytes:
    """From the terminal (twice when a key is made), or the next line of stdin with --passphrase-stdin."""
    if getattr(args, "passphrase_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise KeyError_(f"stdin ended before the {prompt.rstrip(': ')}")
        return line.rstrip("\n").encode("utf-8")
    import getpass
    value = getpass.getpass(prompt)
    if confirm and getpass.getpass("again: ") != value:
        raise KeyError_("the two passphrases differ")
    return value.encode("utf-8")


def _custodian(args: argparse.Namespace) -> Unwrapper | None:
    """The custodian key use this command may make: through the server's holder, or a key file, recorded."""
    key_file, sock = getattr(args, "custodian_key", None), getattr(args, "custodian_socket", None)
    if not key_file and not sock:
        return None
    if key_file and sock:
        raise StoreConfigError("give --custodian-key or --custodian-socket, not both")
    if not getattr(args, "prosecutor", None):
        raise StoreConfigError("a custodian key is used only for a prosecutor: add --prosecutor USERNAME "
                               "(recorded with every unwrap)")
    purpose = f"irms-verify {args.command}"
    if sock:
        return SocketUnwrapper(Path(sock), args.prosecutor, purpose)
    path = Path(str(key_file))
    key = load_custodian_private(path, lambda: _passphrase(args, f"passphrase of {path}: "))
    log = Path(args.key_use_log) if args.key_use_log else default_log()
    return RecordedUnwrapper(KeyUnwrapper(key), log, args.prosecutor, purpose, str(path.resolve()))


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
        raise StoreConfigError("rebuild needs --custodian-socket (the server's custody holder) or --custodian-key")
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
    if args.unencrypted:
        save_private_key(Path(args.private), key, None)
        how = "UNENCRYPTED (--unencrypted): keep it offline"
    else:
        text = sealed_key.seal(key, _passphrase(args, "custodian passphrase: ", confirm=True))
        write_durable(Path(args.private), (text + "\n").encode("utf-8"), mode=0o600, replace=False)
        how = f"sealed ({sealed_key.FORMAT}: argon2id, AES-256-GCM)"
    save_public_key(Path(args.public), key.public_key())
    print(f"custodian key pair: private {args.private} ({how}), public {args.public}")
    return 0


def cmd_custodian_rewrap(args: argparse.Namespace) -> int:
    """Seal a key file still in the old PBKDF2/AES-CBC PEM form; the only place that form is read."""
    try:
        data = Path(args.old).read_bytes()
    except OSError as err:
        raise KeyError_(f"cannot read {args.old}: {err.strerror}") from None
    if not sealed_key.is_legacy(data):
        raise KeyError_(f"{args.old} is not an old-form encrypted PEM (nothing to re-wrap)")
    key = sealed_key.open_legacy_pem(data, _passphrase(args, f"old passphrase of {args.old}: "), args.old)
    text = sealed_key.seal(key, _passphrase(args, "new custodian passphrase: ", confirm=True))
    write_durable(Path(args.new), (text + "\n").encode("utf-8"), mode=0o600, replace=False)
    print(f"custodian key {sealed_key.sealed_key_id(text)} sealed again into {args.new}; destroy {args.old}")
    return 0


def _custody_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--custodian-socket", metavar="PATH",
                   help="unwrap data keys through the server's custody holder (audited in its audit log)")
    p.add_argument("--custodian-key", metavar="FILE",
                   help="custodian private key file (offline copy): each unwrap recorded in the key-use log")
    p.add_argument("--prosecutor", metavar="USERNAME", help="the prosecutor this key use serves (needed with "
                                                              "either of the two above)")
    p.add_argument("--key-use-log", metavar="FILE", help="with --custodian-key: where each unwrap is recorded "
                                                         "(default $IRMS_HOME/custody-key-use.jsonl)")
    p.add_argument("--passphrase-stdin", action="store_true", help="read a sealed key file's passphrase from stdin")


def _common(p: argparse.ArgumentParser, media: bool = True) -> None:
    p.add_argument("session_id")
    p.add_argument("--store", required=True, help="a directory, an export folder, or s3://host:port/bucket")
    p.add_argument("--trust", help="trust store directory (stations/<id>.pub); default $IRMS_HOME/trust. "
                                   "An export folder's own trust/ is read too; where both know a station they "
                                   "must agree")
    _custody_args(p)
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
    _custody_args(p)
    p.add_argument("--witness", help="JSON list of {index, chain} heads witnessed by the server")
    p.add_argument("--no-media", action="store_true", help="skip decoding even with a custodian key")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_seal)
    from verifier import coverage
    coverage.register(sub)
    from verifier import tombstone
    tombstone.register(sub)
    p = sub.add_parser("custodian-keygen", help="make a custodian X25519 key pair (private key sealed with a "
                                                "passphrase: argon2id, AES-256-GCM)")
    p.add_argument("--private", required=True)
    p.add_argument("--public", required=True)
    p.add_argument("--passphrase-stdin", action="store_true", help="read the passphrase from stdin (one line)")
    p.add_argument("--unencrypted", action="store_true", help="write the private key as plain PEM (tests, or a "
                                                             "key that goes straight onto a token)")
    p.set_defaults(func=cmd_custodian_keygen)
    p = sub.add_parser("custodian-rewrap", help="seal a key file still in the old PBKDF2/AES-CBC PEM form")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--passphrase-stdin", action="store_true", help="read the old, then the new passphrase from stdin")
    p.set_defaults(func=cmd_custodian_rewrap)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get(PASSPHRASE_ENV):
        print(f"irms-verify: error: {ENV_REFUSAL}", file=sys.stderr)
        return 2
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
