"""The recording station's agent (irms-agent)."""

import os

# The agent does no linear algebra: numpy's OpenBLAS would start a thread per core at import and
# spin them down at exit, about 70 ms of CPU at every start of irms-agent (a tenth of its own cost
# beyond ffmpeg over a one-minute session). Set before anything imports numpy; a caller's choice stands.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
