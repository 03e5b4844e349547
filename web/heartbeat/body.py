"""The heartbeat document (`irms.heartbeat/1`) and what coverage reads of it."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from web.coverage import HeartbeatFacts, Probe, Reason
from web.stations import Int64


class ProbeBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    check: str = Field(max_length=64)
    device: str = Field(default="", max_length=300)
    ok: bool
    reason: str = Field(default="", max_length=500)
    value: str | Int64 | None = None
    unit: str = ""


class RecordingBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    session_id: str = Field(min_length=1, max_length=64)
    index: Int64 = Field(ge=-1)
    chain_head: str = Field(pattern=r"^[0-9a-f]{64}$")


class SelftestBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    at_us: Int64
    ok: bool
    session_id: str | None = None


class HeartbeatBody(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    format: Literal["irms.heartbeat/1"]
    station_id: str = Field(max_length=64)
    sent_at_us: Int64 = Field(gt=0)
    probes: list[ProbeBody] = Field(default_factory=list, max_length=100)
    disk_free_bytes: Int64 | None = None
    clock_offset_ms: Int64 | None = None
    store_ok: bool | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    recording: RecordingBody | None = None
    selftest: SelftestBody | None = None
    # Heartbeat runs (issue 18, docs/evidence-format.md): checked strictly by evidence.coverage.run_from_doc.
    run: dict[str, Any] | None = None


def facts_of(body: HeartbeatBody, received_us: int, enrolled_at_us: int | None = None) -> HeartbeatFacts:
    return HeartbeatFacts(
        sent_us=body.sent_at_us, received_us=received_us,
        probes=tuple(Probe(p.check, p.device, p.ok, p.reason) for p in body.probes),
        disk_free_bytes=body.disk_free_bytes, clock_offset_ms=body.clock_offset_ms, store_ok=body.store_ok,
        selftest_at_us=body.selftest.at_us if body.selftest else None,
        selftest_ok=body.selftest.ok if body.selftest else None, enrolled_at_us=enrolled_at_us)


NO_REASONS: tuple[Reason, ...] = ()


def facts_from_verdict(sent_us: int, received_us: int, ok: bool, reasons_json: str) -> HeartbeatFacts:
    """A stored heartbeat with the verdict it was given at ingest (cheap: no body to parse)."""
    if ok:
        return HeartbeatFacts(sent_us, received_us, verdict=NO_REASONS)
    verdict = tuple(Reason(str(r.get("code", "")), tuple(sorted((k, str(v)) for k, v in r.items() if k != "code")))
                    for r in json.loads(reasons_json))
    return HeartbeatFacts(sent_us, received_us, verdict=verdict)


