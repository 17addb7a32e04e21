"""Every model variant through the real pipeline on data whose label lives late in a sequence.

The ``late`` synthetic signal (pipeline/datasets/synthetic.py): the label depends on the last two
items of ``history`` (0-30 items), next to a shorter, uninformative ``interests`` (1-5 tokens) and
a ``target`` id. One pipeline (one metadata store) runs once per variant: ExampleGen, statistics,
validation and Transform run the first time and are cached after; Trainer, Evaluator (held-out
AUC, TFMA) and Pusher run per variant. Each pushed model then scores raw tf.Examples through
``serving_default``.

Variants that read whole sequences in order must reach held-out AUC >= 0.9. Order-blind
encoders (mean/sum/max/attention pooling) cannot tell the last items from earlier ones (about 0.8
in memory on this data, see bench/RESULTS.md); the default pooled-mean model is trained,
exported and served by tests/test_pipeline_e2e.py, and bench/model_variants.py runs every
pooling on MovieLens.
"""

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

pytestmark = pytest.mark.e2e

ORDER_AWARE_AUC = 0.9

# (id, model section, padding of the sequences, held-out AUC gate)
# Two xdist groups (conftest.py): the variants run on both workers, each group with its own
# upstream run (pooled_lstm alone took 199 s in a suite run; the other three 91 + 67 + ~60 s).
_A, _B = pytest.mark.xdist_group("variants-a"), pytest.mark.xdist_group("variants-b")
VARIANTS = [
    pytest.param("pooled_lstm", {"type": "pooled", "pooling": "lstm"}, "end", ORDER_AWARE_AUC, marks=_A, id="pooled_lstm"),
    pytest.param("concat_rnn_lstm", {"type": "concat_rnn", "rnn": {"cell": "lstm"}}, "end", ORDER_AWARE_AUC, marks=_B,
                 id="concat_rnn_lstm"),
    # Flatten reads positions: right-aligned (start-padded) sequences put the last items at fixed slots
    pytest.param("concat_flatten", {"type": "concat_flatten"}, "start", ORDER_AWARE_AUC, marks=_B, id="concat_flatten"),
    # DIN target attention is order-blind like attention pooling (pooled target_attention on this data,
    # in memory: best AUC 0.80, classes 0.30 apart, at the separation check's edge), so the LSTM
    # reads history and target attention pools interests (queried by target, another table: the
    # query is projected); DCN-v2 cross layers sit between the concatenated vector and the Dense
    # layers. One variant covers both (a separate pooled_lstm_cross case cost 160 s of suite time).
    pytest.param("concat_rnn_target_attention_cross",
                 {"type": "concat_rnn", "concat": ["history"], "pooling": "target_attention", "query": "target", "cross_layers": 2,
                  "cross_projection_dim": 8},
                 "end", ORDER_AWARE_AUC, marks=_B, id="concat_rnn_target_attention_cross"),
]


@pytest.fixture(scope="module")
def late_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
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


@pytest.mark.parametrize("variant, model, padding, gate", VARIANTS)
def test_variant_learns_trains_exports_and_serves(late_data, variant: str, model: dict, padding: str, gate: float) -> None:
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
