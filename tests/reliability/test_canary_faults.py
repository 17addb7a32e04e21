"""The serving canary under kill -9: its model server dies with it, and the next canary cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from components.serving_canary import LOG_PREFIX, SCRATCH_DIR, remove_leftovers
from tests.helpers.tfs_models import write_half_plus

pytestmark = pytest.mark.serving

_HARNESS = """
import sys, time
sys.path.insert(0, {repo!r})
import embedconfig
from components.serving_canary import start_model_server
process = start_model_server({base!r}, "m", {port}, {log!r})
print(process.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its entry waits for a reaper


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_killing_the_canary_kills_its_model_server(tmp_path: Path) -> None:
    import portpicker

    write_half_plus(str(tmp_path / "base"))
    port = portpicker.pick_unused_port()
    harness = subprocess.Popen([sys.executable, "-c", _HARNESS.format(repo=str(Path(__file__).resolve().parents[2]),
                                base=str(tmp_path / "base"), port=port, log=str(tmp_path / "server.log"))],
                               stdout=subprocess.PIPE, text=True)
    server_pid = int(harness.stdout.readline())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _listening_addresses(port):
        assert _alive(server_pid), (tmp_path / "server.log").read_text()[-2000:]
        time.sleep(0.2)
    # the pipeline's own server listens on loopback only (all zeros would be every interface)
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    assert _listening_addresses(port) <= loopback

    harness.send_signal(signal.SIGKILL)
    harness.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(server_pid):
        time.sleep(0.1)
    assert not _alive(server_pid), "the model server outlived the killed canary"


def test_the_next_canary_removes_what_killed_ones_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blessings = tmp_path / "ServingCanary" / "blessing"
    stale = blessings / "7" / SCRATCH_DIR / "1"
    stale.mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"x")
    os.utime(stale / "saved_model.pb", (time.time() - 7200, time.time() - 7200))
    running = blessings / "8" / SCRATCH_DIR / "1"  # another run's canary, still at work
    running.mkdir(parents=True)
    (running / "saved_model.pb").write_bytes(b"x")
    ours = blessings / "9"
    ours.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead_log = tmp_path / f"{LOG_PREFIX}999999999-abc.log"  # no such PID
    dead_log.write_text("log of a killed canary")
    live_log = tmp_path / f"{LOG_PREFIX}{os.getpid()}-abc.log"
    live_log.write_text("log of a running canary")

    removed = remove_leftovers(str(ours))

    assert sorted(removed) == sorted([str(blessings / "7" / SCRATCH_DIR), str(dead_log)])
    assert not (blessings / "7" / SCRATCH_DIR).exists() and running.exists() and live_log.exists()
