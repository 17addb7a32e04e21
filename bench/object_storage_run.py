"""A cold `embedpipe run` with data, pipeline root and push base in buckets, beside the same run on local disk.

    .venv/bin/python bench/object_storage_run.py [--rows 6000]

The buckets are on moto's S3-API server on 127.0.0.1 (tests/helpers/s3_server.py, the tests'
stand-in for S3 or MinIO), started here and stopped by its PID. The config is the e2e test's: the
built-in synthetic config with slices and a no-regression threshold. Each run is `embedpipe run`
in a fresh process with a fresh pipeline root and metadata store; the S3 server's request count
is read from its log. Prints a table with the machine and date and writes
bench/out/object_storage_run.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_wall_time import machine  # noqa: E402
from pipeline.datasets.synthetic import write_synthetic  # noqa: E402
from tests.helpers.configs import synthetic_raw_config  # noqa: E402
from tests.helpers.s3_server import environment_without_buckets, start_s3_server  # noqa: E402

BUCKETS = {"data": "bench-data", "root": "bench-root", "models": "bench-models"}


def cold_run(config: dict, work: Path, env: dict[str, str]) -> dict:
    """One `embedpipe run` of ``config``; wall seconds and each component's seconds."""
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(path)], cwd=work, env=env,
                         capture_output=True, text=True)
    seconds = time.monotonic() - started
    (work / "run.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"run failed with {out.returncode}: {(out.stdout + out.stderr)[-3000:]}")
    components = {m[0]: float(m[1]) for m in re.findall(r"\[\d+/\d+\] (\S+) done in ([\d.]+)s", out.stdout + out.stderr)}
    return {"total_s": seconds, "components_s": components}


def main() -> None:
    """Run on the buckets, then on local disk, and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--output", default="bench/out/object_storage_run.json")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="embedpipe-s3-bench-"))
    server = start_s3_server(scratch / "moto.log")
    try:
        for bucket in BUCKETS.values():
            server.client().create_bucket(Bucket=bucket)
        runs = {}
        for where in ("S3", "local disk"):
            work = scratch / where.replace(" ", "_")
            work.mkdir()
            raw = synthetic_raw_config(work, work / "data", name="embedpipe-bench-s3")
            raw["evaluation"]["slices"] = [["target_categories"]]
            raw["evaluation"]["no_regression"] = {"AUC": 0.1}
            if where == "S3":
                local = write_synthetic(str(work / "data"), rows=args.rows, seed=0)
                server.client().upload_file(local, BUCKETS["data"], "raw/examples.jsonl")
                raw["data"]["path"] = f"s3://{BUCKETS['data']}/raw/"
                raw["pipeline"]["root"] = f"s3://{BUCKETS['root']}/pipelines"
                raw["push"]["base_directory"] = f"s3://{BUCKETS['models']}/serving"
                env = {**environment_without_buckets(), **server.env()}
            else:
                write_synthetic(str(work / "data"), rows=args.rows, seed=0)
                env = environment_without_buckets()
            before = len((scratch / "moto.log").read_text().splitlines())
            runs[where] = cold_run(raw, work, {**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
            runs[where]["s3_requests"] = len((scratch / "moto.log").read_text().splitlines()) - before
    finally:
        server.stop()

    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"data: {args.rows:,} synthetic rows; cold `embedpipe run`, one after the other")
    print("| component | " + " | ".join(f"{w} (s)" for w in runs) + " |\n|---|" + "---:|" * len(runs))
    for name in runs["S3"]["components_s"]:
        print(f"| {name} | " + " | ".join(f"{r['components_s'].get(name, 0):.1f}" for r in runs.values()) + " |")
    print("| **whole process** | " + " | ".join(f"**{r['total_s']:.1f}**" for r in runs.values()) + " |")
    print("requests to the S3 server: " + ", ".join(f"{w} {r['s3_requests']:,}" for w, r in runs.items()))
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "date": datetime.datetime.now().isoformat(), "rows": args.rows, "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
