"""Wall time per component of a local run: a cold run, then the same run again (cache reuse).

    .venv/bin/python bench/pipeline_wall_time.py --config configs/movielens.yaml --data DIR

Prints a table (machine, date, both runs side by side) and writes bench/out/pipeline_wall_time.json.
The pipeline root and metadata go to a fresh temporary directory, so earlier runs do not count.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import json
import os
import platform
import tempfile
import time

import pipeline  # noqa: F401 -- TF_USE_LEGACY_KERAS before TensorFlow
from embedconfig.config import load_config
from pipeline.local_runner import run_locally


def machine() -> str:
    """CPU count, memory and OS of this machine, for the results table."""
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem_gb:.0f} GiB, {platform.platform()}, Python {platform.python_version()}"


def main() -> None:
    """Run twice and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--data")
    parser.add_argument("--output", default="bench/out/pipeline_wall_time.json")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="embedpipe-bench-")
    config = load_config(args.config)
    if args.data:
        config = config.with_data_path(os.path.abspath(args.data))
    config = dataclasses.replace(
        config,
        pipeline=dataclasses.replace(config.pipeline, root=f"{work}/root", metadata_path=f"{work}/metadata.sqlite"),
        push=dataclasses.replace(config.push, base_directory=f"{work}/serving"),
    )
    runs = []
    for label in ("cold", "cached"):
        durations: dict[str, float] = {}
        start = time.monotonic()
        summary = run_locally(config, out=io.StringIO(), on_durations=durations.update)
        runs.append({"run": label, "total_s": time.monotonic() - start, "components_s": durations,
                     "metrics": summary.metrics, "blessed": summary.blessed, "pushed": summary.pushed_path})

    nodes = list(runs[0]["components_s"])
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"config: {args.config}  data: {config.data.path}")
    print(f"{'component':<32}{'cold (s)':>10}{'cached (s)':>12}")
    for node in nodes:
        print(f"{node:<32}{runs[0]['components_s'].get(node, 0):>10.1f}{runs[1]['components_s'].get(node, 0):>12.1f}")
    print(f"{'whole run':<32}{runs[0]['total_s']:>10.1f}{runs[1]['total_s']:>12.1f}")
    for r in runs:
        auc = r["metrics"].get("auc")
        print(f"{r['run']}: eval AUC {auc:.4f}  blessed={r['blessed']}  pushed={r['pushed']}" if auc is not None else f"{r['run']}: no metrics")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "date": datetime.datetime.now().isoformat(), "config": args.config, "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
