"""A small trained model, exported exactly as the pipeline exports it, built without the pipeline.

The serving tests need a real model of this project (Transform inside its signatures, the
multi-embedding Keras model, warmup requests) but not a pipeline around it. This runs the same
executors the pipeline runs, directly and once: the project's ExampleGen executor, TFX's Transform
executor on ``models.preprocessing.preprocessing_fn``, TFX's Trainer executor on
``models.trainer.run_fn``; then writes the canary's warmup file. 26 s measured, against 107 s
for the two pipeline runs the serving tests used to wait for.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfx.utils import path_utils

from components.serving_canary import write_warmup_requests
from embedconfig.config import PipelineConfig, parse_config
from tests.helpers.configs import synthetic_raw_config
from tests.helpers.example_gen import run_example_gen
from tests.helpers.executors import run_trainer, run_transform, schema_artifact
from tests.helpers.synthetic_requests import SERIALIZED


def small_model_config(work: Path, rows: int = 1500, epochs: int = 2) -> PipelineConfig:
    """The built-in example's config with its data written under ``work``: ``rows`` rows, ``epochs`` epochs."""
    from pipeline.datasets.synthetic import write_synthetic

    write_synthetic(str(work / "data"), rows=rows, seed=0)
    raw = synthetic_raw_config(work, work / "data", name="small-model")
    raw["training"]["epochs"] = epochs
    return parse_config(raw)


def build_small_model(work: Path, model_name: str = "synthetic") -> str:
    """Train and export a small model under ``work``; the SavedModel directory."""
    config = small_model_config(work)
    examples = run_example_gen(config, work / "examples")
    schema = schema_artifact(config, work / "schema")
    graph, transformed = run_transform(config, examples, schema, work)
    model = run_trainer(config, transformed, graph, work)
    saved_model = path_utils.serving_model_dir(model.uri)
    write_warmup_requests(saved_model, SERIALIZED, model_name)  # as the canary leaves it for the Pusher
    assert os.path.exists(os.path.join(saved_model, "saved_model.pb"))
    return saved_model
