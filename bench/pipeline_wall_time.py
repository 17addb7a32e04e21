"""Wall time per component of a local run: a cold run, then the same run again (cache reuse).

    .venv/bin/python bench/pipeline_wall_time.py --config configs/movielens.yaml --data DIR [--compare CHANGE] [--floor ROWS]

Prints a table (machine, date, both runs side by side) and writes bench/out/pipeline_wall_time.json.
The pipeline root and metadata go to a fresh temporary directory, so earlier runs do not count.
``--compare CHANGE`` first runs a cold run in a subprocess without one of the project's speed
changes and prints it as a third column: ``tf-keras-autograph`` (TF 2.16's own AutoGraph rules,
tf_keras converted, patches.exclude_tf_keras_from_autograph not applied) or ``tfma-default-metrics`` (TFMA adds
the Keras model's compiled metrics, its default; pipeline/eval_config.py turns that off) or
``rnn-backend-selection`` (tf_keras' LSTM/GRU layers, which trace a cuDNN and a generic
implementation, instead of the generic RNN the project builds without a GPU) or
``tfma-keras-model-type`` (TFMA left to guess the model's type, which loads it as a Keras model;
pipeline/eval_config.py sets ``tf_generic``) or ``trainer-gc-collect`` (the Trainer does not
collect the garbage earlier components left in the process before it trains) or
``trainer-input-raw`` (``training.input: transformed``, TFX's default: Transform writes every
split's transformed examples and the Trainer parses them, instead of applying Transform's graph to
ExampleGen's examples itself) or ``trainer-save-traces`` (the Trainer's SavedModel keeps every
layer's traced call functions, Keras' default; models/trainer.py save_model leaves them out).
``--floor ROWS`` also runs a cold run (subprocess) on about ROWS records of every data file:
with almost no data, what is left is each component's fixed cost (process-wide start-up, Beam
job set-up, tracing and saving models), the floor under any cold run of this config.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401 -- TF_USE_LEGACY_KERAS before TensorFlow
from bench.machine_speed import describe, machine_speed_in_subprocess  # noqa: E402
from embedconfig.config import load_config, replace  # noqa: E402
from pipeline.local_runner import run_locally  # noqa: E402


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
    parser.add_argument("--compare", choices=sorted(UNDO), help="also a cold run (subprocess) without this change")
    parser.add_argument("--floor", type=int, metavar="ROWS", help="also a cold run (subprocess) on ROWS records of each file")
    parser.add_argument("--undo", choices=sorted(UNDO), help=argparse.SUPPRESS)
    parser.add_argument("--cold-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.undo:
        UNDO[args.undo]()
    speed = {} if args.cold_only else {"before": machine_speed_in_subprocess()}
    extra_runs = []
    if args.compare:
        run = _cold_run_in_subprocess(args.config, args.data, ["--undo", args.compare])
        extra_runs.append({**run, "run": f"cold, {args.compare} undone"})
    if args.floor:
        with tempfile.TemporaryDirectory() as scratch:
            run = _cold_run_in_subprocess(args.config, _sampled_records(args.data or load_config(args.config).data.path, args.floor, scratch), [])
        extra_runs.append({**run, "run": f"cold, {args.floor} rows per file"})

    work = tempfile.mkdtemp(prefix="embedpipe-bench-")
    config = load_config(args.config)
    if args.data:
        config = config.with_data_path(os.path.abspath(args.data))
    config = replace(
        config,
        pipeline=replace(config.pipeline, root=f"{work}/root", metadata_path=f"{work}/metadata.sqlite"),
        push=replace(config.push, base_directory=f"{work}/serving"),
    )
    runs = []
    for label in ("cold",) if args.cold_only else ("cold", "cached"):
        durations: dict[str, float] = {}
        start = time.monotonic()
        summary = run_locally(config, out=io.StringIO(), on_durations=durations.update)
        runs.append({"run": label, "total_s": time.monotonic() - start, "components_s": durations,
                     "metrics": summary.metrics, "blessed": summary.blessed, "pushed": summary.pushed_path})

    runs += extra_runs
    if not args.cold_only:
        speed["after"] = machine_speed_in_subprocess()
    nodes = list(runs[0]["components_s"])
    print(f"machine: {machine()}")
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    for when, reading in speed.items():
        print(f"machine speed {when} the runs: {describe(reading)}")
    print(f"config: {args.config}  data: {config.data.path}")
    width = max(len(r["run"]) for r in runs) + 6
    print(f"{'component':<32}" + "".join(f"{r['run'] + ' (s)':>{width}}" for r in runs))
    for node in nodes:
        print(f"{node:<32}" + "".join(f"{r['components_s'].get(node, 0):>{width}.1f}" for r in runs))
    print(f"{'whole run':<32}" + "".join(f"{r['total_s']:>{width}.1f}" for r in runs))
    for r in runs:
        auc = r["metrics"].get("auc")
        print(f"{r['run']}: eval AUC {auc:.4f}  blessed={r['blessed']}  pushed={r['pushed']}" if auc is not None else f"{r['run']}: no metrics")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"machine": machine(), "machine_speed": speed, "date": datetime.datetime.now().isoformat(), "config": args.config, "runs": runs}, f, indent=2)


def _cold_run_in_subprocess(config: str, data: str | None, extra: list[str]) -> dict:
    """One cold run of this script in a fresh process (its own imports and start-up), as a run record."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "run.json")
        command = [sys.executable, __file__, "--config", config, "--cold-only", "--output", out, *extra]
        subprocess.run(command + (["--data", data] if data else []), check=True)
        with open(out) as f:
            return json.load(f)["runs"][0]


def _sampled_records(data: str, rows: int, scratch: str) -> str:
    """Copies of ``data``'s files (JSONL, or CSV with one record per line), each cut to about ``rows`` records
    spread over the whole file (every k-th one), so users and items stay as varied as in the full data."""
    import tensorflow as tf

    for name in tf.io.gfile.listdir(data):
        with tf.io.gfile.GFile(os.path.join(data, name)) as src:
            lines = src.readlines()
        header, records = (lines[:1], lines[1:]) if name.endswith(".csv") else ([], lines)
        step = max(1, len(records) // rows)
        with tf.io.gfile.GFile(os.path.join(scratch, name), "w") as dst:
            dst.write("".join(header + records[::step][:rows]))
    return scratch


def _convert_tf_keras() -> None:
    """TF 2.16's AutoGraph rules: drop the tf_keras rule and keep the project from adding it."""
    from tensorflow.python.autograph.core import config as autograph_config

    import patches

    patches.exclude_tf_keras_from_autograph = lambda: None  # every caller looks it up on the module
    autograph_config.CONVERSION_RULES = tuple(r for r in autograph_config.CONVERSION_RULES
                                              if not (isinstance(r, autograph_config.DoNotConvert) and r.matches("tf_keras")))


def _edit_eval_config(edit) -> None:
    """Have the pipeline build its EvalConfig as pipeline/eval_config.py does, then ``edit(config)``."""
    import pipeline.eval_config as eval_config
    import pipeline.pipeline_factory as pipeline_factory

    project = eval_config.make_eval_config

    def edited(evaluation):
        config = project(evaluation)
        edit(config)
        return config

    eval_config.make_eval_config = pipeline_factory.make_eval_config = edited


def _clear_model_type(config) -> None:
    for spec in config.model_specs:
        spec.ClearField("model_type")


def _tfma_default_metrics() -> None:
    """TFMA's default: the Keras model's compiled metrics (loss, accuracy) are evaluated too (which
    needs the model type left to TFMA: a tf_generic model has no compiled metrics to add)."""

    def with_compiled_metrics(config) -> None:
        config.options.ClearField("include_default_metrics")
        _clear_model_type(config)

    _edit_eval_config(with_compiled_metrics)


def _tfma_keras_model_type() -> None:
    """TFMA guesses the model type: it loads the model as a Keras model (pipeline/eval_config.py)."""
    _edit_eval_config(_clear_model_type)


def _no_trainer_gc_collect() -> None:
    """The Trainer leaves earlier components' garbage to Python's own collections (models/trainer.py run_fn).

    TFX reloads models.trainer when the Trainer starts, so the module's ``gc`` is patched where it comes from."""
    import gc

    gc.collect = lambda generation=2: 0


def _trainer_input_transformed() -> None:
    """``training.input: transformed`` in the config this script loads, whatever the file says."""
    global load_config
    project = load_config

    def transformed(path: str):
        config = project(path)
        return replace(config, training=replace(config.training, input="transformed"))

    load_config = transformed


def _rnn_backend_selection() -> None:
    """tf_keras' LSTM/GRU layers on a CPU too (both implementations traced; models/model.py recurrent_layer)."""
    import models.model as model

    model.recurrent_layer = model.cudnn_capable_layer


def _trainer_save_traces() -> None:
    """Keras' default ``save_traces=True`` in every ``Model.save`` (only the Trainer saves a Keras model)."""
    import tf_keras as keras

    save = keras.Model.save

    def with_traces(self, *args, **kwargs):
        return save(self, *args, **{**kwargs, "save_traces": True})

    keras.Model.save = with_traces


UNDO = {"tf-keras-autograph": _convert_tf_keras, "tfma-default-metrics": _tfma_default_metrics,
        "rnn-backend-selection": _rnn_backend_selection, "tfma-keras-model-type": _tfma_keras_model_type,
        "trainer-gc-collect": _no_trainer_gc_collect, "trainer-input-raw": _trainer_input_transformed,
        "trainer-save-traces": _trainer_save_traces}


if __name__ == "__main__":
    main()
