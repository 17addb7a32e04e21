"""A small trained model, exported exactly as the pipeline exports it, built without the pipeline.

The serving tests need a real model of this project (Transform inside its signatures, the
multi-embedding Keras model, warmup requests) but not a pipeline around it. This runs the same
executors the pipeline runs, directly and once: the project's ExampleGen executor, TFX's Transform
executor on ``models.preprocessing.preprocessing_fn``, TFX's Trainer executor on
``models.trainer.run_fn``; then writes the canary's warmup file. It takes about a quarter of the
two pipeline runs the serving tests used to wait for (bench/RESULTS.md, "The test suite's own time").
tests/test_beam_modes.py reuses the same build as its ``in_memory`` side (the default Beam mode),
so the suite builds it once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.serving_canary import write_warmup_requests
from embedconfig.config import SPLITS, PipelineConfig, parse_config
from tests.helpers.configs import synthetic_raw_config
from tests.helpers.example_gen import run_example_gen
from tests.helpers.executors import artifact, run_trainer, run_transform, schema_artifact
from tests.helpers.synthetic_requests import SERIALIZED

ROWS, EPOCHS = 1500, 2


def small_model_config(work: Path, epochs: int = EPOCHS) -> PipelineConfig:
    """The built-in example's config with its data under ``work`` (written by ``build_small_model``)."""
    raw = synthetic_raw_config(work, work / "data", name="small-model")
    raw["training"]["epochs"] = epochs
    return parse_config(raw)


@dataclass(frozen=True)
class SmallModel:
    """What ``build_small_model`` left under ``work``, as artifacts any process can rebuild."""

    work: Path

    @property
    def config(self) -> PipelineConfig:
        return small_model_config(self.work)

    @property
    def examples(self) -> standard_artifacts.Examples:
        return artifact(standard_artifacts.Examples, self.work / "examples", list(SPLITS))

    @property
    def transform_graph(self) -> standard_artifacts.TransformGraph:
        return artifact(standard_artifacts.TransformGraph, self.work / "transform_graph")

    @property
    def transformed(self) -> standard_artifacts.Examples:
        return artifact(standard_artifacts.Examples, self.work / "transformed", list(SPLITS))

    @property
    def model(self) -> standard_artifacts.Model:
        return artifact(standard_artifacts.Model, self.work / "model")

    @property
    def saved_model(self) -> str:
        """The exported SavedModel directory (the serving signatures, the warmup file)."""
        return path_utils.serving_model_dir(str(self.work / "model"))


def build_small_model(work: Path, model_name: str = "synthetic") -> SmallModel:
    """Write the data, run ExampleGen, Transform and the Trainer under ``work``, add the warmup file."""
    from pipeline.datasets.synthetic import write_synthetic

    write_synthetic(str(work / "data"), rows=ROWS, seed=0)
    built = SmallModel(work)
    config = built.config
    examples = run_example_gen(config, work / "examples")
    graph, transformed = run_transform(config, examples, schema_artifact(config, work / "schema"), work)
    model = run_trainer(config, examples, transformed, graph, work)
    assert (examples.uri, graph.uri, transformed.uri, model.uri) == (
        built.examples.uri, built.transform_graph.uri, built.transformed.uri, built.model.uri)
    write_warmup_requests(built.saved_model, SERIALIZED, model_name)  # as the canary leaves it for the Pusher
    assert os.path.exists(os.path.join(built.saved_model, "saved_model.pb"))
    return built
