"""Which variants can learn a label that lives at the end of a sequence? In memory, one invocation.

    .venv/bin/python bench/late_signal_variants.py [--rows 4000] [--epochs 12]

Synthetic ``late`` data (pipeline/datasets/synthetic.py): the label depends on the last two items
of ``history`` (0-30 items) next to a shorter random ``interests`` (1-5 tokens) and a ``target``
id. Every variant is built by ``models.model.build_model`` and fitted on the same in-memory
arrays (bench/keras_reference.py encodes them like Transform does); the table shows held-out AUC
after each epoch. Writes bench/out/late_signal_variants.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tf_keras as keras  # noqa: E402

from bench.keras_reference import encode  # noqa: E402
from bench.pipeline_wall_time import machine  # noqa: E402
from embedconfig.config import parse_config  # noqa: E402
from models.model import build_model  # noqa: E402
from pipeline.datasets.synthetic import generate_rows  # noqa: E402

BASE = {
    "pipeline": {"name": "late"},
    "data": {"format": "jsonl", "path": "unused"},
    "schema": "unused",
    "features": [
        {"name": "interests", "kind": "sequence", "dtype": "string", "max_length": 30, "embedding_dim": 8},
        {"name": "history", "kind": "sequence", "dtype": "int", "max_length": 30, "embedding_dim": 16, "vocabulary": {"num_oov_buckets": 2}},
        {"name": "target", "kind": "id", "dtype": "int", "embedding_dim": 16, "share_embedding_with": "history"},
    ],
    "label": {"name": "clicked", "dtype": "int", "positive_if": "== 1"},
    "training": {"batch_size": 64, "learning_rate": 0.005},
}
VARIANTS = [
    ("pooled mean", {"pooling": "mean"}, "end"),
    ("pooled max", {"pooling": "max"}, "end"),
    ("pooled attention", {"pooling": "attention"}, "end"),
    ("pooled lstm", {"pooling": "lstm"}, "end"),
    ("pooled gru", {"pooling": "gru"}, "end"),
    ("concat_rnn lstm", {"type": "concat_rnn"}, "end"),
    ("concat_rnn gru", {"type": "concat_rnn", "rnn": {"cell": "gru"}}, "end"),
    ("concat_flatten, padding end", {"type": "concat_flatten"}, "end"),
    ("concat_flatten, padding start", {"type": "concat_flatten"}, "start"),
]


def main() -> None:
    """Fit every variant, print AUC per epoch."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--output", default="bench/out/late_signal_variants.json")
    args = parser.parse_args()
    rows = list(generate_rows(args.rows, seed=0, signal="late"))
    train, held_out = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)) :]
    results = []
    for name, model, padding in VARIANTS:
        raw = copy.deepcopy(BASE)
        raw["model"] = {"type": "pooled", "hidden_units": [32], **model}
        for f in raw["features"][:2]:
            f["padding"] = padding
        config = parse_config(raw, base_dir=Path("."))
        data = encode(config, train, held_out)
        keras.utils.set_random_seed(0)
        m = build_model(config, data.vocabulary_sizes)
        m.compile(optimizer=keras.optimizers.Adam(0.005), loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        names = [f.name for f in config.features]
        history = m.fit({k: data.train[k] for k in names}, data.train_labels, batch_size=64, epochs=args.epochs, verbose=0,
                        validation_data=({k: data.eval[k] for k in names}, data.eval_labels))
        results.append({"variant": name, "val_auc": history.history["val_auc"]})
        print(f"{name:32s} best {max(history.history['val_auc']):.3f}  " + " ".join(f"{a:.3f}" for a in history.history["val_auc"]), flush=True)
    when = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"\nmachine: {machine()}\ndate: {when}\nrows: {len(train)} train / {len(held_out)} held out, {args.epochs} epochs")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "date": when, "rows": args.rows, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
