"""The late-signal data and the per-variant check that tests/test_model_variants_learn*.py share."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import write_synthetic
from pipeline.local_runner import run_locally
from records.raw_records import column_specs, record_to_example
from tests.helpers.configs import synthetic_raw_config

ORDER_AWARE_AUC = 0.9


def make_late_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """(work dir, raw config without model section) shared by every variant."""
    work = tmp_path_factory.mktemp("variants")
    write_synthetic(str(work / "data"), rows=4000, seed=0, signal="late")
    raw = synthetic_raw_config(work, work / "data", name="embedpipe-variants")
    raw["features"] = [
        {"name": "interests", "kind": "sequence", "dtype": "string", "max_length": 30, "embedding_dim": 8},
        {"name": "history", "kind": "sequence", "dtype": "int", "max_length": 30, "embedding_dim": 16,
         "vocabulary": {"num_oov_buckets": 2}},
        {"name": "target", "kind": "id", "dtype": "int", "embedding_dim": 16, "share_embedding_with": "history"},
    ]
    raw["training"] = {"batch_size": 64, "epochs": 3, "learning_rate": 0.005, "early_stopping": {"patience": 1}}
    # each variant is gated on its own AUC, not compared with the variant blessed before it (and
    # without a no-regression threshold the pipeline has no baseline to evaluate)
    raw["evaluation"] = {"metrics": ["AUC", "ExampleCount"], "no_regression": {}}
    return work, raw


def _eval_rows(work: Path, count: int) -> list[dict[str, Any]]:
    lines = (work / "data" / "examples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[-count:]]


def check_variant(late_data: tuple[Path, dict[str, Any]], variant: str, model: dict, padding: str, gate: float) -> None:
    """Run ``variant`` through the pipeline on the late data; check it learns, is pushed and serves."""
    work, base = late_data
    raw = copy.deepcopy(base)
    raw["model"] = {**model, "hidden_units": [32]}
    for f in raw["features"][:2]:
        f["padding"] = padding
    raw["evaluation"]["value_thresholds"] = {"AUC": {"lower_bound": gate}}
    raw["push"]["model_name"] = variant
    config = parse_config(raw)

    summary = run_locally(config, out=io.StringIO())
    print(f"{variant}: held-out AUC {summary.metrics.get('auc'):.4f} (gate {gate})")
    assert summary.metrics["auc"] >= gate, summary.render()
    assert summary.blessed and summary.pushed, summary.render()
    assert "Trainer" not in summary.cached_components

    model_dir = summary.pushed_path
    assert (Path(model_dir) / "assets.extra" / "embedpipe" / "model_summary.txt").read_text().strip()
    rows = _eval_rows(work, 50)
    specs = column_specs(config)
    serialized = [record_to_example(r, specs, f"row {i}").SerializeToString() for i, r in enumerate(rows)]
    loaded = tf.saved_model.load(model_dir)
    scores = loaded.signatures["serving_default"](examples=tf.constant(serialized))["probability"].numpy()
    assert scores.shape == (len(rows), 1) and np.all((scores > 0) & (scores < 1))
    labels = np.array([r["clicked"] for r in rows])  # a model that learned the rule separates the classes
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.3
