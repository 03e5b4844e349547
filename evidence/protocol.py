"""What a station and the server both name: request paths and body formats (heartbeat, enrolment, events).

The recorder sends these (recorder/heartbeat.py, recorder/events.py) and the web answers them
(web/ingest.py, web/api.py, web/stations.py, web/events.py); defined once, here.
"""

from __future__ import annotations

HEARTBEAT_FORMAT = "irms.heartbeat/1"
HEARTBEAT_PATH = "/api/v1/heartbeat"
ENROLL_PATH = "/api/v1/enroll"
ENROLL_FORMAT = "irms.enroll/1"
EVENTS_PATH = "/api/v1/sessions/events"
EVENTS_FORMAT = "irms.session-events/1"
