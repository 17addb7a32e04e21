"""The model's recurrent layer without a GPU: Keras' generic RNN over the cell against tf_keras' LSTM/GRU.

    .venv/bin/python bench/recurrent_layer.py [--repeats 2]

For each cell (GRU, LSTM) and each layer (models/model.py ``recurrent_layer``, which builds the
generic ``RNN`` without a GPU, and ``cudnn_capable_layer``, tf_keras' own layer that traces a cuDNN
and a generic implementation), a fresh process builds the synthetic config's model with that
pooling, fits it for 2 epochs on 2,560 random rows, saves it as a SavedModel, loads it, and
predicts. The arms alternate, ``--repeats`` times each. Prints a table with the machine and date and
writes bench/out/recurrent_layer.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pipeline_wall_time import machine  # noqa: E402

LAYERS = {"generic RNN (recurrent_layer)": "recurrent_layer", "tf_keras layer (cudnn_capable_layer)": "cudnn_capable_layer"}


def measure(cell: str, layer: str) -> dict[str, float]:
    """In this process: build, fit, save, load and predict one model; seconds per step."""
    import numpy as np
    import tensorflow as tf

    import models.model as model
    from embedconfig.config import parse_config
    from patches import exclude_tf_keras_from_autograph
    from tests.helpers.configs import synthetic_raw_config

    exclude_tf_keras_from_autograph()  # as in the Trainer
    model.recurrent_layer = getattr(model, layer)
    work = Path(tempfile.mkdtemp(prefix="embedpipe-rnn-bench-"))
    raw = synthetic_raw_config(work, work / "data")
    raw["model"] = {"type": "pooled", "pooling": cell}
    keras_model = model.build_model(parse_config(raw), {"user": 50, "interests": 12, "history": 400, "target_categories": 20})
    keras_model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    n = 2560
    x = {"user": rng.integers(1, 50, (n, 1)), "target": rng.integers(1, 400, (n, 1)), "target_categories": rng.integers(0, 20, (n, 4)),
         "interests": rng.integers(0, 12, (n, 8)), "history": rng.integers(0, 400, (n, 30))}
    y = rng.integers(0, 2, (n, 1))
    seconds = {}
    started = time.perf_counter()
    keras_model.fit(x, y, batch_size=128, epochs=2, verbose=0)
    seconds["fit"] = time.perf_counter() - started
    started = time.perf_counter()
    keras_model.save(str(work / "model"), save_format="tf")
    seconds["save"] = time.perf_counter() - started
    started = time.perf_counter()
    tf.saved_model.load(str(work / "model"))
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    keras_model.predict(x, batch_size=256, verbose=0)
    seconds["predict"] = time.perf_counter() - started
    return seconds


def main() -> None:
    """Alternate the arms in fresh processes and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default="bench/out/recurrent_layer.json")
    parser.add_argument("--one", nargs=2, metavar=("CELL", "LAYER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = []
    for cell in ("gru", "lstm"):
        for _ in range(args.repeats):
            for name, layer in LAYERS.items():
                out = subprocess.run([sys.executable, __file__, "--one", cell, layer], capture_output=True, text=True, env=env, check=True)
                runs.append({"cell": cell, "layer": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"| cell | layer | fit 2 epochs (s) | SavedModel save (s) | load (s) | predict {2560:,} rows (s) |\n|---|---|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['cell']} | {r['layer']} | {r['fit']:.1f} | {r['save']:.1f} | {r['load']:.1f} | {r['predict']:.2f} |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "date": datetime.datetime.now().isoformat(), "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
