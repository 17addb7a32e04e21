"""Run TFX's own executors (Transform, Trainer, Evaluator) directly, as the pipeline runs them.

Each helper takes the artifacts the component would get and returns the ones it writes under
``work``; ``beam_args`` chooses the Beam runner and mode (default: DirectRunner in_memory).
"""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from tfx.proto import trainer_pb2, transform_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as keys

from embedconfig.config import EVAL, SPLITS, TRAIN, VALIDATION, PipelineConfig, component_config
from pipeline.eval_config import make_eval_config
from pipeline.pipeline_factory import PREPROCESSING_FN, RUN_FN
from tests.helpers.example_gen import beam_context


def artifact(kind, uri: Path, splits: list[str] | None = None):
    """An artifact of ``kind`` at ``uri``, with its split names."""
    made = kind()
    made.uri = str(uri)
    if splits is not None:
        made.split_names = artifact_utils.encode_split_names(splits)
    return made


def schema_artifact(config: PipelineConfig, out: Path) -> standard_artifacts.Schema:
    """The curated schema as ImportSchemaGen leaves it: one schema.pbtxt under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "schema.pbtxt").write_text(Path(config.schema).read_text())
    return artifact(standard_artifacts.Schema, out)


def run_transform(config: PipelineConfig, examples, schema, work: Path, beam_args: list[str] | None = None):
    """TFX's Transform executor on ``models.preprocessing``, analysing train and transforming every
    split as the pipeline does with ``training.input: transformed`` (the tests compare the
    transformed examples whichever input the Trainer reads): (transform graph, transformed examples)."""
    from tfx.components.transform.executor import Executor

    graph = artifact(standard_artifacts.TransformGraph, work / "transform_graph")
    transformed = artifact(standard_artifacts.Examples, work / "transformed", list(SPLITS))
    splits_config = transform_pb2.SplitsConfig(analyze=[TRAIN], transform=list(SPLITS))
    Executor(beam_context(beam_args)).Do(
        {keys.EXAMPLES_KEY: examples if isinstance(examples, list) else [examples], keys.SCHEMA_KEY: [schema]},
        {keys.TRANSFORM_GRAPH_KEY: [graph], keys.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        {keys.PREPROCESSING_FN_KEY: PREPROCESSING_FN, keys.CUSTOM_CONFIG_KEY: json.dumps(component_config(config.preprocessing)),
         keys.SPLITS_CONFIG_KEY: json_format.MessageToJson(splits_config),
         keys.DISABLE_STATISTICS_KEY: True, keys.FORCE_TF_COMPAT_V1_KEY: 0},
    )
    return graph, transformed


def run_trainer(config: PipelineConfig, examples, transformed, graph, work: Path) -> standard_artifacts.Model:
    """TFX's Trainer executor on ``models.trainer.run_fn`` (fits on train, early-stops on
    validation), given ExampleGen's ``examples`` or Transform's ``transformed`` ones as the pipeline
    wires them (``training.input``): the Model artifact."""
    from tfx.components.trainer.executor import GenericExecutor

    model = artifact(standard_artifacts.Model, work / "model")
    model_run = artifact(standard_artifacts.ModelRun, work / "model_run")
    GenericExecutor().Do(
        {keys.EXAMPLES_KEY: [examples if config.training.reads_raw_examples else transformed], keys.TRANSFORM_GRAPH_KEY: [graph]},
        {keys.MODEL_KEY: [model], keys.MODEL_RUN_KEY: [model_run]},
        {keys.RUN_FN_KEY: RUN_FN, keys.CUSTOM_CONFIG_KEY: json.dumps(component_config(config)),
         keys.TRAIN_ARGS_KEY: json_format.MessageToJson(trainer_pb2.TrainArgs(splits=[TRAIN])),
         keys.EVAL_ARGS_KEY: json_format.MessageToJson(trainer_pb2.EvalArgs(splits=[VALIDATION]))},
    )
    return model


def run_evaluator(config: PipelineConfig, examples, model, out: Path, beam_args: list[str] | None = None):
    """TFX's Evaluator executor (TFMA) with the pipeline's EvalConfig, on the eval split only:
    (evaluation, blessing)."""
    from tfx.components.evaluator.executor import Executor

    evaluation = artifact(standard_artifacts.ModelEvaluation, out / "evaluation")
    blessing = artifact(standard_artifacts.ModelBlessing, out / "blessing")
    Executor(beam_context(beam_args)).Do(
        {keys.EXAMPLES_KEY: [examples], keys.MODEL_KEY: [model]},
        {keys.EVALUATION_KEY: [evaluation], keys.BLESSING_KEY: [blessing]},
        {keys.EVAL_CONFIG_KEY: json_format.MessageToJson(make_eval_config(config.evaluation)),
         keys.EXAMPLE_SPLITS_KEY: json.dumps([EVAL])},
    )
    return evaluation, blessing
