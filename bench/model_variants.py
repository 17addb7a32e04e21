"""Every model variant through the pipeline on MovieLens, beside plain-Keras references, in one run.

    .venv/bin/python bench/model_variants.py --data DIR [--config configs/movielens.yaml] [--only NAME ...]

DIR holds ``train.jsonl`` / ``validation.jsonl`` / ``eval.jsonl`` from ``embedpipe data movielens``.
For each variant the whole pipeline runs, with one metadata store, so ExampleGen/statistics/Transform
are reused when the features do not change. The Trainer early-stops on validation, and the
restored epoch's validation AUC is the figure to choose a variant by; the eval AUC
comes from the Evaluator (TFMA, eval split) and the training time from the Trainer's
``training.json`` (training batches only, validation excluded). The same Keras model
(``models.model.build_model``) is then fitted in memory on numpy arrays of train for the same
number of epochs, keeping the last epoch (nothing is selected on eval): the throughput ratio
pipeline / in-memory is the Trainer's input overhead. The classic
references (``bench/keras_reference.py``) and the gradient-boosted trees of
``bench/tabular_reference.py`` (fit on train, rounds chosen on validation) run in the same invocation.

Prints a table with the machine and date and writes bench/out/model_variants.json.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.keras_reference import (  # noqa: E402
    classic_flatten,
    classic_lstm,
    encode,
    fit_and_score,
    item_mean_baseline,
    read_jsonl,
)
from bench.pipeline_wall_time import machine  # noqa: E402
from bench.tabular_reference import FEATURE_SETS as TABULAR_NAMES  # noqa: E402
from bench.tabular_reference import run_references as tabular_references  # noqa: E402
from embedconfig.config import PipelineConfig, parse_config, replace  # noqa: E402
from models.model import build_model  # noqa: E402
from pipeline.datasets.item_cf import TOKEN_FEATURES  # noqa: E402
from pipeline.local_runner import run_locally  # noqa: E402

SEQUENCES_50 = ["history", "history_ratings", "liked_genres"]  # the three length-50 sequences


def _set_pooling(raw: dict, pooling: str) -> None:
    raw["model"]["pooling"] = pooling
    for f in raw["features"]:
        f.pop("pooling", None)


def _concat(model_type: str, padding: str) -> Any:
    def mutate(raw: dict) -> None:
        _set_pooling(raw, "mean")
        raw["model"].update(type=model_type, concat=SEQUENCES_50)
        for f in raw["features"]:
            if f["name"] in SEQUENCES_50:
                f["padding"] = padding

    return mutate


def _without_item_cf(raw: dict) -> None:
    raw["features"] = [f for f in raw["features"] if f["name"] not in TOKEN_FEATURES]


def _without_rating_attention(raw: dict) -> None:
    raw["model"].pop("attention", None)


def _with_embedding_l2(raw: dict) -> None:
    """configs/movielens.yaml of 2026-12-02 morning: L2 on the embedding tables, trained longer."""
    raw["model"]["embedding_l2"] = 0.0003
    raw["training"].update(epochs=12, early_stopping={"patience": 2})


def _as_of_2026_12_01(raw: dict) -> None:
    """configs/movielens.yaml before issue 15's item-CF change (the tables' yardstick until then)."""
    _without_item_cf(raw)
    _without_rating_attention(raw)


# name -> change to configs/movielens.yaml (None: the config as shipped)
VARIANTS: dict[str, Any] = {
    "configs/movielens.yaml (item-CF tokens, rating attention)": None,
    "configs/movielens.yaml as of 2026-12-01 (neither)": _as_of_2026_12_01,
    "shipped without item-CF tokens": _without_item_cf,
    "shipped without rating attention (the item-CF tokens only)": _without_rating_attention,
    "shipped + embedding L2 3e-4, 12 epochs, patience 2": _with_embedding_l2,
    "pooled mean": lambda raw: _set_pooling(raw, "mean"),
    "pooled max": lambda raw: _set_pooling(raw, "max"),
    "pooled attention": lambda raw: _set_pooling(raw, "attention"),
    "pooled gru (every sequence)": lambda raw: _set_pooling(raw, "gru"),
    "concat_flatten (3 sequences, start-padded)": _concat("concat_flatten", "start"),
    "concat_rnn lstm (3 sequences)": _concat("concat_rnn", "end"),
    # issue 15: DIN's target attention over history (queried by the target movie, same table) and
    # DCN-v2 cross layers over the concatenated vector, each on top of the shipped config
    "shipped + target_attention on history (query: target)": lambda raw: next(
        f for f in raw["features"] if f["name"] == "history"
    ).update(pooling="target_attention", query="target"),
    "shipped + 2 cross layers": lambda raw: raw["model"].update(cross_layers=2),
    # the shipped config with other seeds (training.seed, 0 when not set): how far one pipeline run
    # moves with the seed alone, beside the rows above
    "configs/movielens.yaml, training.seed 1": lambda raw: raw["training"].update(seed=1),
    "configs/movielens.yaml, training.seed 2": lambda raw: raw["training"].update(seed=2),
}


# Every variant early-stops over up to 3 epochs (patience 1), whatever the shipped config trains:
# configs/movielens.yaml trains one epoch because every variant here restored its first one, and
# this table is where a variant that wants a second would show it. A variant may set its own.
VARIANT_TRAINING = {"epochs": 3, "early_stopping": {"patience": 1}}


def _config(base: dict, mutate: Any, work: str, data: str, config_dir: Path) -> PipelineConfig:
    raw = copy.deepcopy(base)
    raw["training"].update(copy.deepcopy(VARIANT_TRAINING))  # a mutator may edit early_stopping in place
    if mutate:
        mutate(raw)
    raw["pipeline"].update(root=f"{work}/root", metadata_path=f"{work}/metadata.sqlite")
    raw["data"]["path"] = data
    raw["push"]["base_directory"] = f"{work}/serving"
    raw.setdefault("evaluation", {})["no_regression"] = {}  # every variant gated on its own AUC
    return parse_config(raw, base_dir=config_dir)


def run_variant(name: str, config: PipelineConfig, train_rows: list, eval_rows: list) -> dict[str, Any]:
    """Pipeline run, then the same model in memory for the same number of epochs."""
    summary = run_locally(config, out=io.StringIO())
    with open(os.path.join(summary.model_path, "assets.extra", "embedpipe", "training.json")) as f:
        training = json.load(f)
    epochs = training["epochs_run"]
    pipeline_eps = len(train_rows) * epochs / training["train_seconds"]

    data = encode(config, train_rows, eval_rows)
    import tf_keras as keras

    keras.utils.set_random_seed(config.training.seed)
    model = build_model(config, data.vocabulary_sizes)
    memory = fit_and_score(
        name, model, data, [f.name for f in config.features], epochs, config.training.batch_size, config.training.learning_rate
    )
    return {
        "variant": name,
        "pipeline_auc": summary.metrics.get("auc"),
        # what selects between variants: the restored epoch's validation AUC (eval chooses nothing)
        "validation_auc": max(training["history"]["val_auc"]),
        "blessed": summary.blessed,
        "epochs": epochs,
        "pipeline_train_s": training["train_seconds"],
        "pipeline_examples_per_s": pipeline_eps,
        "memory_auc": memory.auc,
        "memory_train_s": memory.train_seconds,
        "memory_examples_per_s": memory.examples_per_second,
        "throughput_ratio": pipeline_eps / memory.examples_per_second,
    }


def run_references(config: PipelineConfig, train_rows: list, validation_rows: list, eval_rows: list) -> list[dict[str, Any]]:
    """The issue's plain-Keras references and bench/tabular_reference.py's trees, rerun here."""

    import tf_keras as keras

    data = encode(config, train_rows, eval_rows)

    def pooled_mean(names: list[str]) -> Any:
        # the shipped dropout, nothing else of its model: no attention, cross layers or L2
        model_config = replace(config.model, pooling="mean", hidden_units=(64,), type="pooled", concat=None,
                                           attention=(), cross_layers=0, l2=0.0, embedding_l2=0.0)
        features = tuple(replace(f, pooling=None) for f in config.features if f.name in names)
        subset = replace(config, features=features, model=model_config)
        return lambda: (build_model(subset, data.vocabulary_sizes), names)

    t = config.training
    rows = [item_mean_baseline(train_rows, eval_rows, config, "target").__dict__]
    makers = [
        ("classic A: Flatten+Dense over concat(liked_genres, history)", lambda: classic_flatten(data, config, ["liked_genres", "history"], None)),
        ("classic A + target movie embedding", lambda: classic_flatten(data, config, ["liked_genres", "history"], "target")),
        ("classic B: mask_zero, Concatenate(axis=2), LSTM", lambda: classic_lstm(data, config, ["liked_genres", "history"], None)),
        ("classic B + target movie embedding", lambda: classic_lstm(data, config, ["liked_genres", "history"], "target")),
        ("masked-mean pooled per feature + target + target genres", pooled_mean(["history", "liked_genres", "target", "target_genres"])),
        ("same + user id embedding", pooled_mean(["user", "history", "liked_genres", "target", "target_genres"])),
    ]
    for name, make in makers:
        keras.utils.set_random_seed(t.seed)
        model, inputs = make()
        rows.append(fit_and_score(name, model, data, inputs, 3, 256, 1e-3).__dict__)
    trees = tabular_references(config, {"train": train_rows, "validation": validation_rows, "eval": eval_rows}, t.seed)
    for short, run in trees.items():
        rows.append({"name": f"{TABULAR_NAMES[short]} (rounds chosen on validation)", "auc": run["auc"],
                     "train_seconds": run["fit_seconds"], "examples_per_second": None})
    return rows


def main() -> None:
    """Run everything and report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="directory with train.jsonl, validation.jsonl and eval.jsonl")
    parser.add_argument("--config", default="configs/movielens.yaml")
    parser.add_argument("--only", nargs="*", help="run only variants whose name contains one of these")
    parser.add_argument("--output", default="bench/out/model_variants.json")
    args = parser.parse_args()

    config_path = Path(args.config).resolve()
    base = yaml.safe_load(config_path.read_text())
    data = os.path.abspath(args.data)
    train_rows = read_jsonl(os.path.join(data, "train.jsonl"))
    validation_rows = read_jsonl(os.path.join(data, "validation.jsonl"))
    eval_rows = read_jsonl(os.path.join(data, "eval.jsonl"))
    work = tempfile.mkdtemp(prefix="embedpipe-variants-")

    # warm TensorFlow up once so the first timed fit does not pay for it
    shipped = _config(base, None, work, data, config_path.parent)
    warm = encode(shipped, train_rows[:2000], eval_rows[:500])
    fit_and_score("warm-up", build_model(shipped, warm.vocabulary_sizes), warm, [f.name for f in shipped.features], 1, 256, 1e-3)

    references = run_references(shipped, train_rows, validation_rows, eval_rows)
    variants = []
    for name, mutate in VARIANTS.items():
        if args.only and not any(s in name for s in args.only):
            continue
        print(f"running {name} ...", flush=True)
        variants.append(run_variant(name, _config(base, mutate, work, data, config_path.parent), train_rows, eval_rows))
        _write(args.output, data, references, variants)  # a long run keeps what it has measured

    when = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"\nmachine: {machine()}\ndate: {when}\ndata: {data} ({len(train_rows)} train / {len(eval_rows)} eval)")
    print("\nreferences (plain Keras, in memory, 3 epochs, Adam 1e-3, batch 256; then bench/tabular_reference.py's trees):")
    print(f"| {'reference':<62} | eval AUC | train s | examples/s |\n|{'-' * 64}|---------:|--------:|-----------:|")
    for r in references:
        secs = f"{r['train_seconds']:.1f}" if r["train_seconds"] else "-"
        eps = f"{r['examples_per_second']:,.0f}" if r["examples_per_second"] else "-"
        print(f"| {r['name']:<62} | {r['auc']:.4f} | {secs:>7} | {eps:>10} |")
    print("\nvariants (pipeline: Evaluator AUC, Trainer time; in memory: same model, same epochs):")
    print(
        f"| {'variant':<56} | epochs | validation AUC | pipeline AUC | pipeline train s | pipeline ex/s | in-memory AUC "
        f"| in-memory train s | in-memory ex/s | ratio |\n|{'-' * 58}|-------:|---------------:|-------------:|-----------------:"
        f"|--------------:|--------------:|------------------:|---------------:|------:|"
    )
    for v in variants:
        print(
            f"| {v['variant']:<56} | {v['epochs']:>6} | {v['validation_auc']:>14.4f} | {v['pipeline_auc']:>12.4f} | {v['pipeline_train_s']:>16.1f} "
            f"| {v['pipeline_examples_per_s']:>13,.0f} | {v['memory_auc']:>13.4f} | {v['memory_train_s']:>17.1f} "
            f"| {v['memory_examples_per_s']:>14,.0f} | {v['throughput_ratio']:>5.2f} |"
        )
    _write(args.output, data, references, variants)


def _write(output: str, data: str, references: list[dict[str, Any]], variants: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    when = datetime.datetime.now().isoformat(timespec="seconds")
    with open(output, "w") as f:
        json.dump({"argv": sys.argv, "machine": machine(), "date": when, "data": data, "references": references, "variants": variants}, f, indent=2)


if __name__ == "__main__":
    main()
