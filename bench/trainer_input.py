"""Does the Trainer's input pipeline keep up? The same model fed from files and from memory.

    .venv/bin/python bench/trainer_input.py [--rows 1000000] [--epochs 2]

Writes ``--rows`` synthetic rows, runs the project's ExampleGen and TFX's Transform executors on
them (as the pipeline does), then trains the built-in config's model twice from the same seed:
(a) fed as the Trainer feeds it (models/trainer.py's make_dataset: TFX's TFXIO dataset over the
gzip TFRecords, shuffled), (b) fed from memory (the same transformed batches read once into numpy
arrays, then tf.data.Dataset.from_tensor_slices, shuffled the same way). Reports training
examples/s per epoch (validation excluded), the ratio (a)/(b) and the validation AUC of both. Prints a
table (machine, date) and writes bench/out/trainer_input.json.
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
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output", default="bench/out/trainer_input.json")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras
    from tfx import v1 as tfx
    from tfx.components.util import tfxio_utils

    from embedconfig.config import TRAIN, VALIDATION, parse_config
    from models.model import build_model
    from models.trainer import TrainingClock, compile_model, make_dataset, vocabulary_sizes
    from pipeline.datasets.synthetic import write_synthetic
    from tests.helpers.configs import synthetic_raw_config
    from tests.helpers.example_gen import run_example_gen
    from tests.helpers.executors import run_transform, schema_artifact

    work = Path(tempfile.mkdtemp(prefix="embedpipe-bench-trainer-"))
    write_synthetic(str(work / "data"), rows=args.rows, seed=0, shards=4)
    config = parse_config(synthetic_raw_config(work, work / "data"))
    t = time.monotonic()
    examples = run_example_gen(config, work / "examples")
    graph, transformed = run_transform(config, examples, schema_artifact(config, work / "schema"), work)
    print(f"{args.rows:,} rows: ExampleGen + Transform in {time.monotonic() - t:.1f}s", flush=True)

    tft_output = tft.TFTransformOutput(graph.uri)
    accessor = tfx.components.DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([transformed], []),
        record_batch_factory=None, data_view_decode_fn=None)
    files = {split: [f"{transformed.uri}/Split-{split}/*"] for split in (TRAIN, VALIDATION)}
    batch, seed = config.training.batch_size, config.training.seed

    def from_files(split: str) -> tf.data.Dataset:
        return make_dataset(files[split], accessor, tft_output, batch, split == TRAIN, seed)

    def in_memory(split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        parts = list(make_dataset(files[split], accessor, tft_output, batch, False, seed).as_numpy_iterator())
        features = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        return features, np.concatenate([p[1] for p in parts])

    t = time.monotonic()
    memory = {split: in_memory(split) for split in (TRAIN, VALIDATION)}
    train_rows = len(memory[TRAIN][1])
    print(f"read {train_rows:,} train / {len(memory[VALIDATION][1]):,} validation rows into memory in {time.monotonic() - t:.1f}s", flush=True)

    def memory_dataset(split: str) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(memory[split])
        if split == TRAIN:  # the same shuffle as TFXIO's (buffer 10,000, same seed)
            ds = ds.shuffle(10_000, seed=seed)
        return ds.batch(batch).prefetch(tf.data.AUTOTUNE)

    # Warm-up: the first fit in a process pays TensorFlow's one-time start-up (68 s against 6.5 s for
    # the second fit at 20K rows, measured), which would be charged to whichever feed runs first.
    keras.utils.set_random_seed(seed)
    warm = build_model(config, vocabulary_sizes(config, tft_output))
    compile_model(warm, config)
    warm.fit(memory_dataset(TRAIN), epochs=1, steps_per_epoch=5, verbose=0)

    results = []
    for feed, dataset in (("files (Trainer's TFXIO input)", from_files), ("memory (numpy arrays)", memory_dataset)):
        keras.utils.set_random_seed(seed)
        model = build_model(config, vocabulary_sizes(config, tft_output))
        compile_model(model, config)
        clock = TrainingClock()
        history = model.fit(dataset(TRAIN), epochs=args.epochs, validation_data=dataset(VALIDATION), callbacks=[clock], verbose=0)
        rates = [train_rows / s for s in clock.epoch_seconds]
        results.append({"feed": feed, "epoch_seconds": clock.epoch_seconds, "examples_per_s": rates,
                        "val_auc": [float(v) for v in history.history["val_auc"]]})
        print(f"{feed}: " + ", ".join(f"epoch {i + 1} {s:.1f}s ({r:,.0f}/s)" for i, (s, r) in enumerate(zip(clock.epoch_seconds, rates, strict=True))), flush=True)

    print(f"\nmachine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}  rows: {args.rows:,} ({train_rows:,} train), "
          f"batch {batch}, model {config.model.type}/{config.model.pooling}")
    print("| fed from | " + " | ".join(f"epoch {i + 1} (examples/s)" for i in range(args.epochs)) + " | last val AUC |")
    print("|---|" + "---:|" * args.epochs + "---:|")
    for r in results:
        print(f"| {r['feed']} | " + " | ".join(f"{x:,.0f}" for x in r["examples_per_s"]) + f" | {r['val_auc'][-1]:.4f} |")
    ratio = [a / b for a, b in zip(results[0]["examples_per_s"], results[1]["examples_per_s"], strict=True)]
    print("| files / memory | " + " | ".join(f"{x:.2f}x" for x in ratio) + " | |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "date": datetime.datetime.now().isoformat(), "rows": args.rows,
                   "train_rows": train_rows, "results": results, "ratio_files_over_memory": ratio}, f, indent=2)


if __name__ == "__main__":
    main()
