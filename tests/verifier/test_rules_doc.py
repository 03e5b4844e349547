"""docs/verifier-rules.md lines up one-to-one with the rule functions and their tests."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from verifier.rules import RULES
from verifier.session import DOCUMENT_RULES

ROOT = Path(__file__).resolve().parents[2]


def table() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in (ROOT / "docs" / "verifier-rules.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| (V\d\d) \| `([a-z_.0-9]+)` \|(.*)\| (.*) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(4))
    return rows


def test_every_rule_has_one_row_one_function_and_tests() -> None:
    rows = table()
    assert sorted(rows) == sorted(RULES)
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests" / "verifier").glob("test_*.py"))
    for rule, (function, named_tests) in rows.items():
        module, name = function.split(".")
        fn = getattr(importlib.import_module(f"verifier.rules.{module}"), name)
        assert fn.__name__.startswith(rule.lower()), (rule, function)
        names = re.findall(r"`(test_[a-z0-9_]+)\b(?!`:)", named_tests)
        assert names, f"{rule} names no test"
        for t in names:
            assert f"def {t}" in tests, f"{rule}: {t} does not exist"
    in_audit = {fn.__name__[:3].upper() for fn in DOCUMENT_RULES} | {"V06", "V14", "V15"}
    assert in_audit == set(RULES)
