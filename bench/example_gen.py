"""ExampleGen throughput: our executor on one large JSONL file, and on the same rows as one CSV
file, beside TFX's own ImportExampleGen on the same examples already serialized (the floor of
TFX's ExampleGen machinery: hash split, shuffle, gzip TFRecord writing), in one invocation.

    .venv/bin/python bench/example_gen.py --rows 300000 [--workers 1 2] [--runs jsonl csv tfx]

``--workers``: DirectRunner's worker counts to run side by side (1: in_memory; more:
multi_processing); ``--runs``: which of the three readers.

Prints a table (machine, date) and writes bench/out/example_gen.json. Issue 13's yardstick (its
300K-row file's time inside `embedpipe run`) and what this bench measured beside it:
bench/RESULTS.md, "ExampleGen".
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import embedconfig  # noqa: E402,F401 -- Keras 2 before TensorFlow
from bench.pipeline_wall_time import machine  # noqa: E402


def _count(out: Path) -> int:
    import tensorflow as tf

    files = tf.io.gfile.glob(str(out / "Split-*" / "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _write_csv(work: Path):
    """The JSONL file's rows as one CSV file (list cells joined with ``|``); the config that reads it."""
    import csv

    from embedconfig.config import parse_config
    from tests.helpers.configs import synthetic_raw_config

    (work / "csv").mkdir()
    with open(work / "data" / "examples.jsonl") as source, open(work / "csv" / "examples.csv", "w", newline="") as target:
        writer = None
        for line in source:
            record = json.loads(line)
            if writer is None:
                writer = csv.DictWriter(target, fieldnames=list(record))
                writer.writeheader()
            writer.writerow({k: "|".join(map(str, v)) if isinstance(v, list) else v for k, v in record.items()})
    raw = synthetic_raw_config(work, work / "csv" / "examples.csv")
    raw["data"].update(format="csv", list_delimiter="|")
    return parse_config(raw)


def main() -> None:
    """Generate the data, run both, report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="DirectRunner worker counts, side by side")
    parser.add_argument("--runs", nargs="+", choices=("jsonl", "csv", "tfx"), default=["jsonl", "csv", "tfx"])
    parser.add_argument("--output", default="bench/out/example_gen.json")
    args = parser.parse_args()

    import tensorflow as tf

    from embedconfig.beam_profiles import beam_args_for
    from embedconfig.config import parse_config
    from pipeline.datasets.synthetic import write_synthetic
    from records.raw_records import column_specs, read_file_examples
    from tests.helpers.configs import synthetic_raw_config
    from tests.helpers.example_gen import run_example_gen, run_import_example_gen

    work = Path(tempfile.mkdtemp(prefix="embedpipe-bench-eg-"))
    write_synthetic(str(work / "data"), rows=args.rows, seed=0)
    config = parse_config(synthetic_raw_config(work, work / "data" / "examples.jsonl"))
    if "tfx" in args.runs:
        (work / "tfrecord").mkdir()
        with tf.io.TFRecordWriter(str(work / "tfrecord" / "examples.tfrecord")) as writer:
            for example in read_file_examples(str(work / "data" / "examples.jsonl"), "jsonl", column_specs(config), "|"):
                writer.write(example.SerializeToString())
    size_mb = os.path.getsize(work / "data" / "examples.jsonl") / 2**20
    csv_config = _write_csv(work)

    readers = {
        "jsonl": ("embedpipe ExampleGen, JSONL", lambda out, beam_args: run_example_gen(config, out, beam_args)),
        "csv": ("embedpipe ExampleGen, same rows as CSV", lambda out, beam_args: run_example_gen(csv_config, out, beam_args)),
        "tfx": ("TFX ImportExampleGen, same examples as TFRecord",
                lambda out, beam_args: run_import_example_gen(config, work / "tfrecord", out, beam_args)),
    }
    rows = []
    for workers in args.workers:
        mode = "multi_processing" if workers > 1 else "in_memory"  # the config's beam.options for direct
        beam_args = list(beam_args_for("direct", {"direct_running_mode": mode, "direct_num_workers": workers}).flags)
        for key in args.runs:
            name, run = readers[key]
            out = work / f"{key}-{workers}"
            started = time.monotonic()
            run(out, beam_args)
            seconds = time.monotonic() - started
            count = _count(out)
            rows.append({"run": name, "workers": workers, "mode": mode, "seconds": seconds, "rows": count, "rows_per_s": count / seconds})
            print(f"{name}, {mode} x{workers}: {seconds:.1f} s, {count:,} rows", flush=True)

    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    csv_mb = os.path.getsize(work / "csv" / "examples.csv") / 2**20
    print(f"data: {args.rows:,} synthetic rows, one {size_mb:.0f} MB JSONL file (as CSV: {csv_mb:.0f} MB)")
    print(f"| {'run':<48} | {'Beam DirectRunner':<20} | {'seconds':>8} | {'rows':>9} | {'rows/s':>9} |")
    print(f"|{'-' * 50}|{'-' * 22}|{'-' * 9}:|{'-' * 10}:|{'-' * 10}:|")
    for r in rows:
        print(f"| {r['run']:<48} | {r['mode'] + ' x' + str(r['workers']):<20} | {r['seconds']:>8.1f} | {r['rows']:>9,} | {r['rows_per_s']:>9,.0f} |")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
                                             "rows": args.rows, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
