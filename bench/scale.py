"""How the whole pipeline scales with rows: `embedpipe run` at 10K, 100K and 1M synthetic rows.

    .venv/bin/python bench/scale.py [--sizes 10000 100000 1000000] [--modes in_memory multi_processing auto]
                                    [--trainer-inputs raw transformed]

Per size, the data is written once in shards (streamed to disk, ``embedpipe data synthetic
--shards``), then each Beam DirectRunner mode runs the built-in config on it from a fresh pipeline
root, as a subprocess. Every 0.5 s the bench samples the subprocess's whole process tree (Beam's
multi_processing workers and the canary's model server included): CPU time (live processes plus
the ones they reaped) and resident memory. Per component, from the progress lines' timestamps:
wall time, rows/s, CPU% (100% = one core busy) and the tree's peak RSS; per run, the end-to-end
time per row. ``--trainer-inputs`` runs each mode with each ``training.input`` (raw, the default:
the Trainer applies Transform's graph; transformed: Transform writes the transformed splits), the
runs labelled "MODE, input transformed" for the latter. Prints the tables (machine, date, all runs
side by side), writes
bench/out/scale.json and bench/out/scale.png (the scaling curve).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine_speed import describe, machine_speed_in_subprocess  # noqa: E402
from bench.pipeline_wall_time import machine  # noqa: E402
from embedconfig.config import TRAINER_INPUTS  # noqa: E402
from tests.helpers.configs import synthetic_raw_config  # noqa: E402

EMBEDPIPE = str(Path(sys.executable).with_name("embedpipe"))
BEAM_COMPONENTS = ("ExampleGen", "StatisticsGen", "Transform", "Evaluator")
_PROGRESS = re.compile(r"^\[\d+/\d+\] (\S+) (\.\.\.|done in )")


@dataclass
class Sample:
    """One look at the process tree."""

    t: float
    cpu_s: float  # cumulative CPU seconds of the tree (user + system, reaped children included)
    rss_mb: float


@dataclass
class ComponentStats:
    """One component of one run."""

    name: str
    wall_s: float
    rows_per_s: float
    cpu_percent: float | None  # None: shorter than two samples
    peak_rss_mb: float | None  # None: no sample inside


@dataclass
class RunStats:
    """One `embedpipe run` at one size and Beam mode."""

    rows: int
    mode: str
    total_s: float
    us_per_row: float
    peak_rss_mb: float
    beam_cpu_percent: float | None
    auc: float | None
    exit_code: int
    components: list[ComponentStats] = field(default_factory=list)


def _tree_sample(root: psutil.Process) -> Sample:
    cpu = rss = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return Sample(time.monotonic(), cpu, rss / 2**20)


def _cpu_percent(samples: list[Sample], start: float, end: float) -> float | None:
    inside = [s for s in samples if start <= s.t <= end]
    if len(inside) < 2 or inside[-1].t - inside[0].t < 1.0:
        return None
    return 100.0 * (inside[-1].cpu_s - inside[0].cpu_s) / (inside[-1].t - inside[0].t)


def run_once(config_path: Path, rows: int, mode: str, log_path: Path, interval: float = 0.5) -> RunStats:
    """Run the pipeline in a subprocess, sampling its process tree; per-component statistics."""
    start = time.monotonic()
    proc = subprocess.Popen([EMBEDPIPE, "run", "--config", str(config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    events: list[tuple[float, str, str]] = []  # (time, node, "start" | "end")
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            m = _PROGRESS.match(line)
            if m:
                events.append((time.monotonic(), m.group(1), "start" if m.group(2) == "..." else "end"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    root = psutil.Process(proc.pid)
    samples: list[Sample] = []
    while proc.poll() is None:
        try:
            samples.append(_tree_sample(root))
        except psutil.NoSuchProcess:
            break
        time.sleep(interval)
    reader.join(timeout=10)
    total = time.monotonic() - start
    log_path.write_text("".join(lines))

    components = []
    begun: dict[str, float] = {}
    for t, node, kind in events:
        if kind == "start":
            begun[node] = t
            continue
        t0 = begun.get(node, t)
        wall = t - t0
        inside = [s.rss_mb for s in samples if t0 <= s.t <= t]
        components.append(ComponentStats(node, round(wall, 2), round(rows / wall) if wall > 0.05 else 0,
                                         _cpu_percent(samples, t0, t), round(max(inside)) if inside else None))
    beam = [(begun[c.name], begun[c.name] + c.wall_s) for c in components if c.name in BEAM_COMPONENTS]
    beam_cpu = beam_wall = 0.0
    for t0, t1 in beam:
        pct = _cpu_percent(samples, t0, t1)
        if pct is not None:
            beam_cpu += pct * (t1 - t0)
            beam_wall += t1 - t0
    auc = re.search(r"^\s+auc\s+([0-9.]+)", "".join(lines), re.MULTILINE)  # the run summary's metric line
    return RunStats(rows, mode, round(total, 1), round(1e6 * total / rows, 1),
                    round(max((s.rss_mb for s in samples), default=0.0)),
                    round(beam_cpu / beam_wall) if beam_wall else None,
                    float(auc.group(1)) if auc else None, proc.returncode, components)


def write_config(work: Path, data: Path, mode: str, workers: int, trainer_input: str = "raw") -> Path:
    """configs/synthetic.yaml pointed into ``work``, with one Beam DirectRunner mode and ``training.input``."""
    raw = synthetic_raw_config(work, data, name=f"embedpipe-scale-{mode}")
    raw["training"]["input"] = trainer_input
    options = {"direct_running_mode": mode}  # auto: the project's choice from the input's size (pipeline/beam_mode.py)
    if mode != "auto":
        options["direct_num_workers"] = 1 if mode == "in_memory" else workers
    raw["beam"] = {"runner": "direct", "options": options}
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def print_tables(runs: list[RunStats]) -> None:
    """One table per size (components x modes), then the scaling summary."""
    for rows in sorted({r.rows for r in runs}):
        at = [r for r in runs if r.rows == rows]
        print(f"\n{rows:,} rows")
        header = "".join(f" | {r.mode}: s, rows/s, CPU%, RSS MB" for r in at)
        print(f"| component{header} |")
        print("|---" + "|---" * len(at) + "|")
        names = list(dict.fromkeys(c.name for r in at for c in r.components))
        for name in names:
            cells = []
            for r in at:
                c = next((c for c in r.components if c.name == name), None)
                cpu = "-" if c is None or c.cpu_percent is None else f"{c.cpu_percent:.0f}"
                rss = "-" if c is None or c.peak_rss_mb is None else f"{c.peak_rss_mb:,}"
                cells.append("-" if c is None else f"{c.wall_s:.1f}, {c.rows_per_s:,}, {cpu}, {rss}")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print("| **whole run** | " + " | ".join(f"**{r.total_s:.1f}**, -, -, {r.peak_rss_mb:,}" for r in at) + " |")
    print("\n| rows | mode | end to end (s) | us/row | peak RSS (MB) | CPU% in Beam components | eval AUC | exit |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r.rows:,} | {r.mode} | {r.total_s:.1f} | {r.us_per_row:.0f} | {r.peak_rss_mb:,} | "
              f"{r.beam_cpu_percent if r.beam_cpu_percent is not None else '-'} | {r.auc if r.auc is not None else '-'} | {r.exit_code} |")


def plot(runs: list[RunStats], path: str) -> None:
    """The scaling curve: end-to-end seconds and microseconds per row against rows, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (total, per_row) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in dict.fromkeys(r.mode for r in runs):
        at = sorted((r for r in runs if r.mode == mode), key=lambda r: r.rows)
        total.plot([r.rows for r in at], [r.total_s for r in at], marker="o", label=mode)
        per_row.plot([r.rows for r in at], [r.us_per_row for r in at], marker="o", label=mode)
    total.set(xscale="log", yscale="log", xlabel="rows", ylabel="end to end (s)", title="embedpipe run, 2 cores")
    per_row.set(xscale="log", xlabel="rows", ylabel="wall time per row (us)", title="per-row cost")
    for ax in (total, per_row):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_json(path: str, runs: list[RunStats], workers: int, load_at_start: float, speed: dict) -> None:
    """The runs so far, with machine, its speed, date, workers and the load average when the bench started."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump({"machine": machine(), "machine_speed": speed, "date": datetime.datetime.now().isoformat(), "workers": workers,
                   "load_average_at_start": load_at_start, "runs": [asdict(r) for r in runs]}, f, indent=2)


def main() -> None:
    """Generate each size once, run every mode on it, report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", default=["in_memory", "multi_processing"],
                        choices=["in_memory", "multi_processing", "multi_threading", "auto"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="direct_num_workers for the parallel modes")
    parser.add_argument("--trainer-inputs", nargs="+", default=["raw"], choices=TRAINER_INPUTS)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--output", default="bench/out/scale.json")
    parser.add_argument("--plot", default="bench/out/scale.png")
    args = parser.parse_args()

    from pipeline.datasets.synthetic import write_synthetic

    load_at_start = os.getloadavg()
    speed = {"before": machine_speed_in_subprocess()}
    base = Path(tempfile.mkdtemp(prefix="embedpipe-bench-scale-"))
    runs: list[RunStats] = []
    for rows in args.sizes:
        data = base / f"data-{rows}"
        t = time.monotonic()
        write_synthetic(str(data), rows=rows, seed=0, shards=args.shards)
        print(f"{rows:,} rows written in {args.shards} shards in {time.monotonic() - t:.1f}s", flush=True)
        for mode, trainer_input in itertools.product(args.modes, args.trainer_inputs):
            label = mode if trainer_input == "raw" else f"{mode}, input {trainer_input}"
            work = base / f"{rows}-{mode}-{trainer_input}"
            work.mkdir()
            run = run_once(write_config(work, data, mode, args.workers, trainer_input), rows, label, work / "run.log")
            print(f"{rows:,} rows, {label}: {run.total_s:.1f}s, exit {run.exit_code} (log {work / 'run.log'})", flush=True)
            runs.append(run)
            write_json(args.output, runs, args.workers, load_at_start[0], speed)  # after each run: a long bench keeps what it measured

    speed["after"] = machine_speed_in_subprocess()
    print(f"\nmachine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}  workers (parallel modes): {args.workers}  "
          f"load average at start {load_at_start[0]:.1f}, at end {os.getloadavg()[0]:.1f} (other work on the machine)")
    for when, reading in speed.items():
        print(f"machine speed {when} the runs: {describe(reading)}")
    print_tables(runs)
    write_json(args.output, runs, args.workers, load_at_start[0], speed)
    plot(runs, args.plot)
    print(f"\nwrote {args.output} and {args.plot}")


if __name__ == "__main__":
    main()
