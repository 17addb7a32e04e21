"""A small trained model, exported exactly as the pipeline exports it, built without the pipeline.

The serving tests need a real model of this project (Transform inside its signatures, the
multi-embedding Keras model, warmup requests) but not a pipeline around it. This runs the same
executors the pipeline runs, directly and once: the project's ExampleGen executor, TFX's Transform
executor on ``models.preprocessing.preprocessing_fn``, TFX's Trainer executor on
``models.trainer.run_fn``; then writes the canary's warmup file. 26 s measured, against 107 s
for the two pipeline runs the serving tests used to wait for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from google.protobuf import json_format
from tfx.components.trainer.executor import GenericExecutor
from tfx.components.transform.executor import Executor as TransformExecutor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.utils import path_utils

from components.serving_canary import write_warmup_requests
from embedconfig.config import PipelineConfig, parse_config
from models.preprocessing import module_custom_config
from pipeline.pipeline_factory import PREPROCESSING_FN, RUN_FN
from tests.helpers.configs import synthetic_raw_config
from tests.helpers.example_gen import run_example_gen
from tests.helpers.synthetic_requests import SERIALIZED


def _artifact(kind, uri: Path, splits: list[str] | None = None):
    artifact = kind()
    artifact.uri = str(uri)
    if splits is not None:
        artifact.split_names = artifact_utils.encode_split_names(splits)
    return artifact


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

    schema = _artifact(standard_artifacts.Schema, work / "schema")  # as ImportSchemaGen leaves it: one file
    (work / "schema").mkdir()
    (work / "schema" / "schema.pbtxt").write_text(Path(config.schema_path).read_text())
    graph = _artifact(standard_artifacts.TransformGraph, work / "transform_graph")
    transformed = _artifact(standard_artifacts.Examples, work / "transformed", ["train", "eval"])
    TransformExecutor().Do(
        {keys.EXAMPLES_KEY: [examples], keys.SCHEMA_KEY: [schema]},
        {keys.TRANSFORM_GRAPH_KEY: [graph], keys.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        {keys.PREPROCESSING_FN_KEY: PREPROCESSING_FN, keys.CUSTOM_CONFIG_KEY: json.dumps(module_custom_config(config.preprocessing)),
         keys.DISABLE_STATISTICS_KEY: True, keys.FORCE_TF_COMPAT_V1_KEY: 0},
    )

    model = _artifact(standard_artifacts.Model, work / "model")
    model_run = _artifact(standard_artifacts.ModelRun, work / "model_run")
    GenericExecutor().Do(
        {keys.EXAMPLES_KEY: [transformed], keys.TRANSFORM_GRAPH_KEY: [graph]},
        {keys.MODEL_KEY: [model], keys.MODEL_RUN_KEY: [model_run]},
        {keys.RUN_FN_KEY: RUN_FN, keys.CUSTOM_CONFIG_KEY: json.dumps(module_custom_config(config)),
         keys.TRAIN_ARGS_KEY: json_format.MessageToJson(trainer_pb2.TrainArgs(splits=["train"])),
         keys.EVAL_ARGS_KEY: json_format.MessageToJson(trainer_pb2.EvalArgs(splits=["eval"]))},
    )
    saved_model = path_utils.serving_model_dir(model.uri)
    write_warmup_requests(saved_model, SERIALIZED, model_name)  # as the canary leaves it for the Pusher
    assert os.path.exists(os.path.join(saved_model, "saved_model.pb"))
    return saved_model
