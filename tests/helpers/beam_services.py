"""Beam's own Python job service and the project's SDK worker pool, on 127.0.0.1 and free ports.

Each runs in its own process group (the pool's workers included), started by the test, waited
for (bounded), and stopped by its PID: SIGTERM to the group, SIGKILL after a timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Service:
    """A started service: where it listens, its process (a process-group leader), its log."""

    address: str
    process: subprocess.Popen
    log: Path

    def group_alive(self) -> bool:
        """Whether any process of its group (the pool's workers too) still runs."""
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True).returncode == 0

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group, then SIGKILL after ``timeout`` seconds."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                deadline = time.monotonic() + wait
                while self.group_alive() and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self.group_alive():
                    break
            except subprocess.TimeoutExpired:
                continue


def _free_port() -> int:
    import portpicker

    return portpicker.pick_unused_port()


def _start(command: list[str], port: int, log: Path, timeout: float) -> Service:
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(f"127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return service
        except OSError:
            time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{command[:3]} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def start_job_service(work: Path, timeout: float = 60.0) -> Service:
    """Beam's Python job service (apache_beam.runners.portability.local_job_service_main)."""
    port = _free_port()
    (work / "staging").mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
               "--port", str(port), "--staging_dir", str(work / "staging")]
    return _start(command, port, work / "job_service.log", timeout)


def start_worker_pool(work: Path, timeout: float = 60.0) -> Service:
    """The project's SDK worker pool (``embedpipe beam-worker-pool``: Beam's pool, workers booted
    through ``embedpipe-beam-worker``)."""
    port = _free_port()
    embedpipe = str(Path(sys.executable).with_name("embedpipe"))
    return _start([embedpipe, "beam-worker-pool", "--port", str(port)], port, work / "worker_pool.log", timeout)
