"""A local S3-API server for the tests: moto's standalone server on 127.0.0.1 and a free port.

It stands in for the MinIO that Kubeflow Pipelines installs (or for S3 itself): the same REST API,
reached by boto3 (and so Beam) and by tensorflow-io through the standard environment variables.
Started by the test session, stopped by its PID; its data lives in its memory only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "embedpipe-test", "AWS_SECRET_ACCESS_KEY": "embedpipe-test-secret-not-for-yaml"}
REGION = "us-east-1"


def environment_without_buckets() -> dict[str, str]:
    """This process's environment without bucket credentials or endpoints (``AWS_*``, ``S3_*``):
    what a subprocess starts from before a test gives it a server's variables (and what a pod has)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}


@dataclass
class S3Server:
    """A running server: its endpoint, the environment a client needs, its process."""

    endpoint: str
    process: subprocess.Popen

    def env(self) -> dict[str, str]:
        """The standard variables boto3 and Beam read; tensorflow-io's come from them (storage/)."""
        return {**CREDENTIALS, "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def client(self):
        """A boto3 S3 client on this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_s3_server(log_path: Path, timeout: float = 60.0) -> S3Server:
    """Start moto's server and wait (at most ``timeout`` seconds) until it answers HTTP."""
    import portpicker

    port = portpicker.pick_unused_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"moto's server did not answer on {endpoint} within {timeout:.0f} s")
