"""How far a normal day drifts from the day before, and how far a broken one does: the yardstick
for data.drift's default threshold (embedconfig.config.DEFAULT_DRIFT_THRESHOLD).

    .venv/bin/python bench/daily_drift.py [--rows 6000] [--days 4]

Writes ``--days`` normal days of ``embedpipe data synthetic --spans`` (the same users, new items and
another trending category each day), then the last day again with each feature broken each way
(emptied, collapsed onto one value). Each day's statistics come from TFDV over the tf.Examples our
ExampleGen would write (records/), against the curated schema/synthetic.pbtxt; each distance is the
one components/drift_gate.py measures (TFDV's L-infinity for strings, Jensen-Shannon for ints).
Prints one table (machine, date) and writes bench/out/daily_drift.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402

from components.drift_gate import measure_drift  # noqa: E402
from embedconfig.config import DEFAULT_DRIFT_THRESHOLD, DriftConfig, load_config  # noqa: E402
from pipeline.datasets.synthetic import BREAKAGES, write_synthetic_spans  # noqa: E402
from records.raw_records import ReaderSettings, file_pieces, read_piece  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ("user", "interests", "history", "target", "target_categories")


def statistics_of(jsonl: str, settings: ReaderSettings, scratch: str):
    """TFDV statistics of one day's file, through the project's record conversion."""
    records = os.path.join(scratch, os.path.basename(os.path.dirname(jsonl)) + ".tfrecord")
    with tf.io.TFRecordWriter(records) as writer:
        for piece in file_pieces(jsonl, "jsonl"):
            for example in read_piece(piece, "jsonl", settings.specs, settings.list_delimiter):
                writer.write(example.SerializeToString())
    return tfdv.generate_statistics_from_tfrecord(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000, help="rows per day (the built-in example's size)")
    parser.add_argument("--days", type=int, default=4)
    args = parser.parse_args()
    config = load_config(os.path.join(REPO, "configs", "synthetic.yaml"), check_schema=False)
    schema = tfdv.load_schema_text(config.schema)
    settings = ReaderSettings.of(config)
    drift = DriftConfig()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        normal = write_synthetic_spans(os.path.join(scratch, "normal"), args.rows, args.days)
        stats = [statistics_of(p, settings, scratch) for p in normal]
        for day in range(1, args.days):
            measured, _ = measure_drift(stats[day], stats[day - 1], schema, drift)
            rows += [{"case": f"normal day {day + 1} vs {day}", "feature": d.feature, "measure": d.measure, "distance": d.distance}
                     for d in measured if d.feature in FEATURES]
        for feature in FEATURES:
            for how in BREAKAGES:
                broken = write_synthetic_spans(os.path.join(scratch, f"{feature}-{how}"), args.rows, args.days,
                                               broken=(args.days, feature, how))
                measured, _ = measure_drift(statistics_of(broken[-1], settings, scratch), stats[-2], schema, drift)
                hit = next((d for d in measured if d.feature == feature), None)
                rows.append({"case": f"day {args.days} with {feature} {how}", "feature": feature,
                             "measure": hit.measure if hit else None, "distance": hit.distance if hit else float("nan")})
    header = (f"# daily_drift: {args.days} days x {args.rows} rows, {platform.node()} ({os.cpu_count()} cores), "
              f"{datetime.datetime.now().isoformat(timespec='minutes')}; default threshold {DEFAULT_DRIFT_THRESHOLD}")
    print(header)
    normal_rows = [r for r in rows if r["case"].startswith("normal")]
    print(f"{'feature':<20} {'measure':<28} {'largest normal day':>18} {'emptied':>9} {'collapsed':>10}   (emptied: no values left = 1.0)")
    for feature in FEATURES:
        largest = max(r["distance"] for r in normal_rows if r["feature"] == feature)
        broken = {how: next(r["distance"] for r in rows if r["case"] == f"day {args.days} with {feature} {how}") for how in BREAKAGES}
        measure = next(r["measure"] for r in normal_rows if r["feature"] == feature)
        print(f"{feature:<20} {measure:<28} {largest:>18.4f} {broken['empty']:>9.4f} {broken['collapse']:>10.4f}")
    os.makedirs(os.path.join(REPO, "bench", "out"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "out", "daily_drift.json"), "w") as f:  # the bench's own output, a local file
        json.dump({"header": header, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
