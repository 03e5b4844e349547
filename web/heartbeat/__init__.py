"""The heartbeat path (R08, R16): a signed heartbeat from the HTTP request to its batch's commit.

- `body`: the document (`irms.heartbeat/1`) and what coverage reads of it;
- `ingest`: the checks that need no database (station authentication is web/station_auth.py);
- `pending`: a heartbeat waiting for its batch, and its answer;
- `plan`: what a batch writes, planned without I/O (the uptime span rule);
- `sql`: a batch's statements per dialect (PostgreSQL, SQLite);
- `batch`: the refusals the database decides (revoked 403, replay 409, another station's session 403,
  audited) and the steps run on a cursor;
- `commit`: the group commit, for threads and for an event loop;
- `http`: the front door, for WSGI and ASGI (an accepted heartbeat's answer carries the signed audit
  head the batch read, web/audit_anchor.py);
- `witness`: the owner's witnessed heads read back.

Refusals keep their meaning: an unknown station or a bad signature is 401, a revoked station 403
(read under the row lock in the batch's transaction, so revocation works at once), a nonce seen
before 409, a head for a session another station owns 403. A refused heartbeat stores nothing, not
even its nonce; a batch the database refuses is 503 for every request in it.
"""
