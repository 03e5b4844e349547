"""A signed heartbeat from its bytes to its answer: the checks that need no database, then its batch.

A heartbeat is checked where it arrives (web/station_auth.py): the station's key (kept per process),
the signature and its freshness, then the body and its verdict (`coverage.judge_heartbeat`). What
needs the database (the station's status, the nonce, the session's owner, the append-only rows,
the uptime span) waits for a batch (web/heartbeat/commit.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from evidence.coverage_bundle import signed_envelope
from evidence.request_auth import SignedRequest
from web.coverage import Policy, judge_heartbeat, run_from_doc
from web.db import Database
from web.errors import BadRequest, Unauthenticated
from web.heartbeat.body import HeartbeatBody, facts_of
from web.heartbeat.commit import AsyncGroupCommit, GroupCommit
from web.heartbeat.pending import Accepted, Pending, outcome
from web.station_auth import StationKey, StationKeys, check_signature, signed_request
from web.stations import parse_body


class HeartbeatIngest:
    """Checks a signed heartbeat request and hands it to the group commit; one per app (process)."""

    def __init__(self, db: Database, policy: Policy, window_s: int) -> None:
        self.db = db
        self.policy = policy
        self.window_s = window_s
        self.commit = GroupCommit(db, policy, window_s)
        self.keys = StationKeys(db)

    def station_key(self, station_id: str) -> StationKey | None:
        return self.keys.find(station_id)

    def prepare(self, req: SignedRequest, found: StationKey | None, headers: Mapping[str, str],
                path: str, raw: bytes, now_us: int) -> Pending:
        """Every check that needs no database: the refusal is raised (401, 400)."""
        if found is None:
            raise Unauthenticated(f"unknown station {req.station_id}")
        pk, key, enrolled_at_us = found
        check_signature(key, headers, "POST", path, raw, now_us, self.window_s)
        body: HeartbeatBody = parse_body(HeartbeatBody, raw, "heartbeat")
        if body.station_id != req.station_id:
            raise BadRequest(f"heartbeat names station {body.station_id}, but was signed by {req.station_id}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("heartbeat: body is not UTF-8") from None
        try:
            run = run_from_doc(body.run)
        except ValueError as err:
            raise BadRequest(f"heartbeat: {err}") from None
        facts = facts_of(body, now_us, enrolled_at_us)._replace(run=run)
        reasons = [r.as_json() for r in judge_heartbeat(facts, self.policy)]
        return Pending(pk, req.station_id, req.nonce, now_us, facts.at_us, body, text, reasons,
                       signed_envelope(path, headers), facts)

    def ingest(self, headers: Mapping[str, str], path: str, raw: bytes, now_us: int) -> Accepted:
        """Authenticate, check and store one heartbeat; raises the refusal (401/403/409/400/503)."""
        req = signed_request(headers)
        item = self.prepare(req, self.station_key(req.station_id), headers, path, raw, now_us)
        self.commit.submit(item)
        return outcome(item)


class AsyncHeartbeatIngest:
    """The heartbeat path on an asyncio event loop (PostgreSQL): the same checks, `AsyncGroupCommit` to store."""

    def __init__(self, ingest: HeartbeatIngest, conninfo: str) -> None:
        self.sync = ingest
        self.conninfo = conninfo
        self.commit = AsyncGroupCommit(conninfo, ingest.policy, ingest.window_s)

    async def station_key(self, station_id: str) -> StationKey | None:
        return await self.sync.keys.find_async(station_id, self.conninfo)

    async def ingest(self, headers: Mapping[str, str], path: str, raw: bytes, now_us: int) -> Accepted:
        req = signed_request(headers)
        item = self.sync.prepare(req, await self.station_key(req.station_id), headers, path, raw, now_us)
        await self.commit.submit(item)
        return outcome(item)

    async def close(self) -> None:
        await self.commit.close()
        await self.sync.keys.close_async()
