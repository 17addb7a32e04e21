"""The late-signal data and the per-variant check of tests/test_model_variants_learn.py.

Each variant runs the executors a pipeline runs for it: the project's ExampleGen and TFX's
Transform once per test module (once per padding: padding is a Transform setting), then TFX's Trainer
executor on ``models.trainer.run_fn`` per variant, which fits on train, early-stops on validation
and exports the SavedModel with its signatures. The held-out AUC is the exported model's, on
every raw tf.Example of the eval split, scored through ``serving_default`` as a server scores
them. The Evaluator (TFMA), the canary and the Pusher are the same for every variant and run
end to end in tests/test_pipeline_e2e.py. Running the whole pipeline per variant, the four
variants took about four times as long as this way
(bench/RESULTS.md, "The test suite's own time").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tfx.types import artifact_utils
from tfx.utils import path_utils

from embedconfig.config import EVAL, PipelineConfig, parse_config
from models.trainer import MODEL_INFO_DIR
from pipeline.datasets.synthetic import write_synthetic
from tests.helpers.configs import synthetic_raw_config
from tests.helpers.example_gen import run_example_gen
from tests.helpers.executors import run_trainer, run_transform, schema_artifact

ORDER_AWARE_AUC = 0.9


@dataclass
class LateData:
    """The raw config (each variant replaces its model section), the examples, and Transform's
    outputs per padding."""

    work: Path
    raw: dict[str, Any]
    examples: Any = None
    transforms: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def config(self, model: dict, padding: str, name: str) -> PipelineConfig:
        raw = copy.deepcopy(self.raw)
        raw["model"] = {**model, "hidden_units": [32]}
        for f in raw["features"][:2]:
            f["padding"] = padding
        raw["push"]["model_name"] = name
        return parse_config(raw)

    def transformed(self, config: PipelineConfig, padding: str) -> tuple[Any, Any]:
        """(transform graph, transformed examples) for ``padding``, made on first use."""
        if padding not in self.transforms:
            out = self.work / f"transform-{padding}"
            self.transforms[padding] = run_transform(config, self.examples, schema_artifact(config, out / "schema"), out)
        return self.transforms[padding]


def make_late_data(tmp_path_factory: pytest.TempPathFactory) -> LateData:
    """The late-signal data written and run through ExampleGen, once per test module."""
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
    data = LateData(work, raw)
    data.examples = run_example_gen(parse_config(raw), work / "examples")  # ExampleGen reads no model section
    return data


def _eval_split(examples, label: str) -> tuple[list[bytes], np.ndarray]:
    """Every raw tf.Example of ExampleGen's eval split, and its ``label`` values (int)."""
    files = tf.io.gfile.glob(f"{artifact_utils.get_split_uri([examples], EVAL)}/*")
    serialized = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    labels = np.array([tf.train.Example.FromString(s).features.feature[label].int64_list.value[0] for s in serialized])
    return serialized, labels


def check_variant(data: LateData, variant: str, model: dict, padding: str, gate: float) -> None:
    """Train ``variant`` with the Trainer executor on the late data; check it learns, exports and serves."""
    config = data.config(model, padding, variant)
    graph, transformed = data.transformed(config, padding)
    trained = run_trainer(config, data.examples, transformed, graph, data.work / variant)
    model_dir = path_utils.serving_model_dir(trained.uri)
    assert tf.io.gfile.exists(f"{model_dir}/{MODEL_INFO_DIR}/model_summary.txt")

    serialized, labels = _eval_split(data.examples, config.label.name)
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    scores = np.concatenate([serve(examples=tf.constant(serialized[i:i + 256]))["probability"].numpy()
                             for i in range(0, len(serialized), 256)])
    assert scores.shape == (len(serialized), 1) and np.all((scores > 0) & (scores < 1))
    auc = keras.metrics.AUC(num_thresholds=10_000)  # as TFMA's AUC: 10,000 thresholds
    auc.update_state(labels, scores[:, 0])
    print(f"{variant}: held-out AUC {float(auc.result()):.4f} on {len(labels)} eval examples (gate {gate})")
    assert float(auc.result()) >= gate
    # a model that learned the rule separates the classes
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.3
