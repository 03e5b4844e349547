"""Fixtures that record real sessions with the real agent CLI (ffmpeg, synthetic kit)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@dataclass
class Station:
    home: Path
    trust: Path
    custodian_key: Path
    custodian_pub: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "IRMS_HOME": str(self.home), "IRMS_TRUST": str(self.trust)}

    def agent(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli("irms-agent", *args, env=self.env(), timeout=timeout, check=check)

    def verify(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        if "--custodian-key" in args and "--prosecutor" not in args:  # the key use is recorded for someone
            args = (*args, "--prosecutor", "kiemsat.test")
        return run_cli("irms-verify", *args, env=self.env(), timeout=timeout, check=False)

    def popen_agent(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(BIN / "irms-agent"), *args], env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

    def record(self, store: str, seconds: float, *, site: str = "HN-CA-01", room: str = "P101",
               case: str = "1/2026/HS", extra: tuple[str, ...] = ()) -> dict[str, object]:
        proc = self.agent("record", "--kit", "synthetic", "--seconds", str(seconds), "--store", store,
                          "--site", site, "--room", room, "--case", case, "--suspect", "Nguyễn Văn A",
                          "--interrogator", "Trần Thị B", "--legal-basis", "Điều 183 BLTTHS", "--json", *extra)
        return dict(json.loads(proc.stdout))


def run_cli(name: str, *args: str, env: dict[str, str], timeout: float = 300,
            check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an entry point; `input` is its stdin (none by default)."""
    proc = subprocess.run([str(BIN / name), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}))
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def make_station(base: Path, station_id: str, trust: Path | None = None) -> Station:
    base.mkdir(parents=True, exist_ok=True)
    cust_key, cust_pub = base / "custodian.key", base / "custodian.pub"
    st = Station(home=base / "home", trust=trust or base / "trust", custodian_key=cust_key, custodian_pub=cust_pub)
    run_cli("irms-verify", "custodian-keygen", "--unencrypted", "--private", str(cust_key), "--public", str(cust_pub),
            env=st.env())
    st.agent("keygen", "--station-id", station_id, "--custodian-public", str(cust_pub))
    return st


@pytest.fixture
def station(tmp_path: Path) -> Station:
    """A fresh enrolled-less station with its own custodian key and trust store."""
    return make_station(tmp_path / "station", "st-test-01")


@dataclass
class Recorded:
    station: Station
    store: Path
    session_id: str
    other_session_id: str
    summary: dict[str, object]


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Two real sessions (about 9 s and 5 s) by one station in one file store; do not modify it."""
    base = tmp_path_factory.mktemp("recorded")
    st = make_station(base, "st-rec-01")
    store = base / "store"
    first = st.record(str(store), 9, case="7/2026/HS")
    second = st.record(str(store), 5, room="P102", case="8/2026/HS")
    yield Recorded(st, store, str(first["session_id"]), str(second["session_id"]), first)


@pytest.fixture
def store_copy(recorded: Recorded, tmp_path: Path) -> Path:
    """A private copy of the recorded store that a test may tamper with."""
    dst = tmp_path / "store"
    shutil.copytree(recorded.store, dst)
    for p in dst.rglob("*"):
        if p.is_file():
            p.chmod(0o640)
    return dst
