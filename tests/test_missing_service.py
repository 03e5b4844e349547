"""Under `make test` a test that needs PostgreSQL, S3 or Chromium fails when the service is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.base import REQUIRE_SERVICES, missing_service


def test_a_missing_service_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_SERVICES, "1")
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL here"):
        missing_service("no PostgreSQL here")


def test_a_missing_service_skips_on_a_developers_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_SERVICES, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium here"):
        missing_service("no Chromium here")


def test_make_test_requires_services() -> None:
    script = (Path(__file__).resolve().parents[1] / "scripts" / "run-tests").read_text()
    assert f"export {REQUIRE_SERVICES}=1" in script
