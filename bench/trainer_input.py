"""Does the Trainer's input pipeline keep up? The same model fed from files and from memory.

    .venv/bin/python bench/trainer_input.py [--rows 1000000] [--epochs 3] [--rounds 2] [--feeds NAME ...]
    .venv/bin/python bench/trainer_input.py --config configs/movielens.yaml --data DIR [...]

Writes ``--rows`` synthetic rows (or, with ``--config`` and ``--data``, takes that config's model and
files, e.g. MovieLens from ``embedpipe data movielens``), runs the project's ExampleGen and TFX's Transform executors on
them (as the pipeline does), then trains the built-in config's model from the same seed, fed these
ways: (a) as the Trainer feeds it (models/trainer.py, ``training.input: raw``: ``decide_caching``
counts the records, then ``make_dataset`` parses ExampleGen's gzip TFRecords once through TFX's
TFXIO dataset, applies Transform's graph and caches the result in memory if it fits
``training.cache_mb``, each row packed into one tensor through the shuffle), (a') the same from
Transform's transformed examples (``training.input: transformed``), (a'') that with rows as dicts
of tensors (the Trainer before 2026-12-02), (b) that without the cache (every epoch reads and
parses the files: the Trainer before the cache), (c) fed from memory (the same transformed batches
read once into numpy arrays, then tf.data.Dataset.from_tensor_slices, shuffled the same way). The
feeds take turns ``--rounds`` times, so a slow spell of the VM hits all of them. Reports
training examples/s per epoch (validation excluded; the Trainer's record count is charged to its
first epoch), each feed's rate over all epochs (median of the rounds), its ratio to memory and the
validation AUC. ``--feeds`` keeps the feeds whose name contains one of its words (memory always
runs). Prints a table (machine, date) and writes bench/out/trainer_input.json.
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


def main() -> None:
    """Prepare the transformed data once, train both ways, report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="times each feed trains, taking turns")
    parser.add_argument("--config", help="a config file: its model and, with --data, its data instead of synthetic rows")
    parser.add_argument("--data", help="with --config: the data directory (the config's data.path otherwise)")
    parser.add_argument("--feeds", nargs="*", help="only the feeds whose name contains one of these (memory always runs)")
    parser.add_argument("--output", default="bench/out/trainer_input.json")
    args = parser.parse_args()

    import statistics

    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras
    from tfx.components.trainer.fn_args_utils import DataAccessor
    from tfx.components.util import tfxio_utils

    from embedconfig.config import TRAIN, VALIDATION, load_config, parse_config
    from models.model import build_model
    from models.trainer import SHUFFLE_BUFFER, TrainingClock, compile_model, decide_caching, make_dataset, vocabulary_sizes
    from pipeline.datasets.synthetic import write_synthetic
    from tests.helpers.configs import synthetic_raw_config
    from tests.helpers.example_gen import run_example_gen
    from tests.helpers.executors import run_transform, schema_artifact

    work = Path(tempfile.mkdtemp(prefix="embedpipe-bench-trainer-"))
    if args.config:
        config = load_config(args.config)
        if args.data:
            config = config.with_data_path(os.path.abspath(args.data))
        source = f"{args.config} on {config.data.path}"
    else:
        write_synthetic(str(work / "data"), rows=args.rows, seed=0, shards=4)
        config = parse_config(synthetic_raw_config(work, work / "data"))
        source = f"{args.rows:,} synthetic rows, the built-in config"
    t = time.monotonic()
    examples = run_example_gen(config, work / "examples")
    graph, transformed = run_transform(config, examples, schema_artifact(config, work / "schema"), work)
    print(f"{source}: ExampleGen + Transform in {time.monotonic() - t:.1f}s", flush=True)

    tft_output = tft.TFTransformOutput(graph.uri)
    # keyed by raw: ExampleGen's examples (training.input: raw) or Transform's transformed ones
    accessors = {raw: DataAccessor(tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([a], []),
                                   record_batch_factory=None, data_view_decode_fn=None)
                 for raw, a in ((True, examples), (False, transformed))}
    split_files = {raw: {split: [f"{a.uri}/Split-{split}/*"] for split in (TRAIN, VALIDATION)}
                   for raw, a in ((True, examples), (False, transformed))}
    accessor, files = accessors[False], split_files[False]
    batch, seed = config.training.batch_size, config.training.seed

    def in_memory(split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        parts = list(make_dataset(files[split], accessor, tft_output, batch, False, seed).as_numpy_iterator())
        features = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        return features, np.concatenate([p[1] for p in parts])

    t = time.monotonic()
    memory = {split: in_memory(split) for split in (TRAIN, VALIDATION)}
    train_rows = len(memory[TRAIN][1])
    print(f"read {train_rows:,} train / {len(memory[VALIDATION][1]):,} validation rows into memory in {time.monotonic() - t:.1f}s", flush=True)

    def memory_datasets() -> tuple[tf.data.Dataset, tf.data.Dataset, float]:
        def dataset(split: str) -> tf.data.Dataset:
            ds = tf.data.Dataset.from_tensor_slices(memory[split])
            if split == TRAIN:  # the same shuffle as TFXIO's (buffer 10,000, same seed)
                ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed)
            return ds.batch(batch).prefetch(tf.data.AUTOTUNE)
        return dataset(TRAIN), dataset(VALIDATION), 0.0

    def file_datasets(cache: bool, pack_rows: bool = True, raw: bool = False) -> tuple[tf.data.Dataset, tf.data.Dataset, float]:
        f, a = split_files[raw], accessors[raw]
        started = time.perf_counter()
        plan = decide_caching(f[TRAIN], f[VALIDATION], tft_output, config.training) if cache else {}
        decided = time.perf_counter() - started
        return (make_dataset(f[TRAIN], a, tft_output, batch, True, seed, plan.get("train", False), pack_rows, raw=raw),
                make_dataset(f[VALIDATION], a, tft_output, batch, False, seed, plan.get("validation", False), pack_rows, raw=raw),
                decided)

    feeds = {
        "raw files through Transform's graph, cached (the Trainer now)": lambda: file_datasets(True, raw=True),
        "transformed files, cached (training.input: transformed)": lambda: file_datasets(True),
        "transformed files, cached, rows as dicts (before 2026-12-02)": lambda: file_datasets(True, pack_rows=False),
        "transformed files, parsed every epoch (before the cache)": lambda: file_datasets(False),
        "memory (numpy arrays)": memory_datasets,
    }
    if args.feeds:
        feeds = {name: make for name, make in feeds.items() if name.startswith("memory") or any(w in name for w in args.feeds)}

    # Warm-up: the first fit in a process pays TensorFlow's one-time start-up (68 s against 6.5 s for
    # the second fit at 20K rows, measured), which would be charged to whichever feed runs first.
    keras.utils.set_random_seed(seed)
    warm = build_model(config, vocabulary_sizes(config, tft_output))
    compile_model(warm, config)
    warm.fit(memory_datasets()[0], epochs=1, steps_per_epoch=5, verbose=0)

    runs: dict[str, list[dict]] = {name: [] for name in feeds}
    for round_ in range(args.rounds):
        for name, make in feeds.items():
            keras.utils.set_random_seed(seed)
            train, validation, decide_s = make()
            model = build_model(config, vocabulary_sizes(config, tft_output))
            compile_model(model, config)
            clock = TrainingClock()
            history = model.fit(train, epochs=args.epochs, validation_data=validation, callbacks=[clock], verbose=0)
            seconds = list(clock.epoch_seconds)
            seconds[0] += decide_s  # the Trainer counts the records before its first epoch
            rates = [train_rows / x for x in seconds]
            runs[name].append({"epoch_seconds": seconds, "examples_per_s": rates, "overall_examples_per_s": train_rows * len(seconds) / sum(seconds),
                               "count_seconds": decide_s, "val_auc": [float(v) for v in history.history["val_auc"]]})
            print(f"round {round_ + 1} {name}: " + ", ".join(f"epoch {i + 1} {x:.1f}s ({r:,.0f}/s)" for i, (x, r) in enumerate(zip(seconds, rates, strict=True)))
                  + (f" (record count {decide_s:.1f}s, in epoch 1)" if decide_s else ""), flush=True)

    overall = {name: statistics.median(r["overall_examples_per_s"] for r in rs) for name, rs in runs.items()}
    memory_rate = overall["memory (numpy arrays)"]
    print(f"\nmachine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}  data: {source} ({train_rows:,} train), "
          f"batch {batch}, model {config.model.type}/{config.model.pooling}, {args.epochs} epochs, {args.rounds} rounds taking turns")
    print("| fed from | round | " + " | ".join(f"epoch {i + 1} (ex/s)" for i in range(args.epochs)) + " | all epochs (ex/s) | last val AUC |")
    print("|---|---:|" + "---:|" * args.epochs + "---:|---:|")
    for name, rs in runs.items():
        for i, r in enumerate(rs):
            print(f"| {name} | {i + 1} | " + " | ".join(f"{x:,.0f}" for x in r["examples_per_s"])
                  + f" | {r['overall_examples_per_s']:,.0f} | {r['val_auc'][-1]:.4f} |")
    print("\n| fed from | all epochs, median of rounds (ex/s) | / memory |")
    print("|---|---:|---:|")
    for name, rate in overall.items():
        print(f"| {name} | {rate:,.0f} | {rate / memory_rate:.2f}x |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"argv": sys.argv, "machine": machine(), "date": datetime.datetime.now().isoformat(), "data": source, "epochs": args.epochs,
                   "rounds": args.rounds, "train_rows": train_rows, "runs": runs, "overall_examples_per_s": overall,
                   "ratio_to_memory": {n: r / memory_rate for n, r in overall.items()}}, f, indent=2)


if __name__ == "__main__":
    main()
