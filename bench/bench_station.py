"""A throw-away station for benchmarks: custodian key pair, station key, environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def make_station(base: Path) -> dict[str, str]:
    """Keys under `base`; returns the environment that points irms-agent and irms-verify at them."""
    env = {**os.environ, "IRMS_HOME": str(base / "home"), "IRMS_TRUST": str(base / "trust")}
    subprocess.run([str(BIN / "irms-verify"), "custodian-keygen", "--unencrypted", "--private", str(base / "c.key"),
                    "--public", str(base / "c.pub")], env=env, check=True, capture_output=True, timeout=60)
    subprocess.run([str(BIN / "irms-agent"), "keygen", "--custodian-public", str(base / "c.pub")], env=env,
                   check=True, capture_output=True, timeout=60)
    return env
