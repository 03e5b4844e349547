"""Coverage as a pure function: it lives in evidence/coverage.py (the bottom package), so the offline
checker (`irms-verify coverage`) recomputes the figure with the very same code; re-exported here."""

from evidence.coverage import *  # noqa: F403
from evidence.coverage import __all__  # noqa: F401
