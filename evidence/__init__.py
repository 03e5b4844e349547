"""The evidence formats every part of IRMS shares; the bottom package, importing nothing of the project.

Canonical JSON (canonical.py), signed documents, keys and key files (keys.py), the hash chain (chain.py),
the evidence objects, their names and closed lists (formats.py), segment encryption and the key wrap
(crypto.py), signed station requests (request_auth.py), the station-server protocol constants
(protocol.py), durable file writes (durable.py), and the project's error root (errors.py).
Verifying a session lives in `verifier`.
"""
