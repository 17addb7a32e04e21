"""Build the TFX pipeline from a validated config: the one factory behind every runner.

ExampleGen -> StatisticsGen -> ExampleValidator -> SchemaGate -> Transform -> Trainer -> Evaluator
(against the latest blessed model) -> ServingCanary (live gRPC server on the candidate) -> Pusher,
with the curated schema imported by ImportSchemaGen. The Pusher needs the Evaluator's blessing and
the canary's InfraBlessing, and pushes the canary's copy of the model (with warmup requests).
Three splits (embedconfig.config.SPLITS): Transform analyses train only, the Trainer fits on train
and early-stops on validation, the Evaluator and the canary read eval only, which nothing before
them has seen.
Module code is referenced by dotted path (``models.preprocessing.preprocessing_fn``,
``models.trainer.run_fn``), so the project must be installed wherever components run.
"""

from __future__ import annotations

import json
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx.components import Evaluator, ExampleValidator, Pusher, StatisticsGen, Trainer, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.dsl.input_resolution.strategies.span_range_strategy import SpanRangeStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import pusher_pb2, range_config_pb2, trainer_pb2, transform_pb2
from tfx.types.channel import Channel
from tfx.types.standard_artifacts import Examples, ExampleStatistics, Model, ModelBlessing, TransformCache

from components.analyzer_cache_strategy import AnalyzerCacheOfAnotherWindowStrategy
from components.baseline_strategy import LatestBlessedOtherModelStrategy
from components.drift_gate import DriftGate, PreviousSpanStatisticsStrategy
from components.example_gen import make_example_gen
from components.pusher import Executor as AtomicPusherExecutor
from components.run_parameters import RunParameters
from components.schema_gate import SchemaGate
from components.serving_canary import ServingCanary
from components.warm_start_strategy import LatestBlessedModelOfOtherExamplesStrategy
from embedconfig.config import EVAL, SPLITS, TRAIN, VALIDATION, PipelineConfig, WindowConfig, component_config
from pipeline.beam_mode import BeamChoice, beam_choice
from pipeline.eval_config import eval_config_json, make_eval_config

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"

# Node ids, in run order; the run summary and the Kubeflow tests refer to them.
EXAMPLE_GEN = "ExampleGen"
SPAN_WINDOW = "span_window_resolver"  # with spans in data.path: the Examples of the window's spans
SCHEMA_IMPORTER = "SchemaImporter"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
SCHEMA_GATE = "SchemaGate"
PREVIOUS_STATISTICS = "previous_span_statistics_resolver"  # with spans: the span before the newest
DRIFT_GATE = "DriftGate"
TRANSFORM = "Transform"
TRANSFORM_CACHE = "transform_cache_resolver"  # with spans: Transform's analyzer cache of the last run
RUN_PARAMETERS = "RunParameters"
WARM_START_RESOLVER = "warm_start_model_resolver"  # training.warm_start: the last blessed model, the Trainer's base_model
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "Evaluator"
SERVING_CANARY = "ServingCanary"
PUSHER = "Pusher"


# Run-time parameters of a compiled (Kubeflow) pipeline: name -> (type, default from the config)
def runtime_parameter_defaults(config: PipelineConfig) -> dict[str, tuple[type, Any]]:
    """What a Kubeflow run may set without recompiling, with the config's values as defaults."""
    return {
        "epochs": (int, config.training.epochs),
        "learning_rate": (float, config.training.learning_rate),
        "eval_config": (str, eval_config_json(config.evaluation)),
    }


def create_components(config: PipelineConfig, compiled: bool = False) -> list[Any]:
    """The pipeline's components, wired, in topological order.

    ``compiled`` (Kubeflow): training epochs / learning rate and the Evaluator's EvalConfig
    (thresholds) become run-time parameters defaulting to the config's values, and data paths
    are not checked here (they are read in the pods).
    """
    params: dict[str, Any] = {name: default for name, (_, default) in runtime_parameter_defaults(config).items()}
    params["eval_config"] = make_eval_config(config.evaluation)
    if compiled:
        from tfx.orchestration import data_types

        params = {
            name: data_types.RuntimeParameter(name=name, ptype=ptype, default=default)
            for name, (ptype, default) in runtime_parameter_defaults(config).items()
        }
    # Compiled with spans: no resolver of ours compiles for Kubeflow, so ExampleGen reads the window
    # itself (records.raw_records.SpanWindow; docs/KUBEFLOW.md, "Spans").
    compiled_window = compiled and config.data.has_spans
    example_gen = make_example_gen(config, check_files=not compiled, window=compiled_window).with_id(EXAMPLE_GEN)
    schema_importer = ImportSchemaGen(schema_file=config.schema).with_id(SCHEMA_IMPORTER)
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_importer.outputs["schema"]
    ).with_id(STATISTICS_GEN)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_importer.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR)
    schema_gate = SchemaGate(
        anomalies=example_validator.outputs["anomalies"], statistics=statistics_gen.outputs["statistics"],
        schema=schema_importer.outputs["schema"],
    ).with_id(SCHEMA_GATE)

    # With spans, ExampleGen ingests the newest span; Transform and the Trainer read the window's
    # spans from ML Metadata (every span ExampleGen ever ingested in this pipeline), while
    # StatisticsGen, the gate, the Evaluator and the canary look at the newest span only.
    window = None
    if config.data.has_spans and not compiled:
        window = Resolver(
            strategy_class=SpanRangeStrategy,
            config={"range_config": span_range(config.data.window)},
            examples=Channel(type=Examples, producer_component_id=EXAMPLE_GEN, output_key="examples"),
        ).with_id(SPAN_WINDOW)
        window.add_upstream_node(example_gen)  # after this run's span is ingested
    training_examples = window.outputs["examples"] if window else example_gen.outputs["examples"]
    # Transform's analyzer cache, keyed by each input's file pattern: a window that moved by a day
    # reads the spans it analysed before from the cache and analyses only the new one
    # (components/analyzer_cache_strategy.py says why the cache of another window).
    analyzer_cache = None
    if window:
        analyzer_cache = Resolver(
            strategy_class=AnalyzerCacheOfAnotherWindowStrategy,
            cache=Channel(type=TransformCache, producer_component_id=TRANSFORM, output_key="updated_analyzer_cache"),
            examples=window.outputs["examples"],
        ).with_id(TRANSFORM_CACHE)

    trainer_reads_transformed = not config.training.reads_raw_examples
    transform = Transform(
        examples=training_examples,
        schema=schema_importer.outputs["schema"],
        analyzer_cache=analyzer_cache.outputs["cache"] if analyzer_cache else None,
        preprocessing_fn=PREPROCESSING_FN,
        # Only what preprocessing needs, so changing training settings keeps Transform cached.
        custom_config=component_config(config.preprocessing),
        # vocabularies from train only: a token seen only in validation or eval must be OOV there,
        # as it is for a model serving new data
        splits_config=transform_pb2.SplitsConfig(analyze=[TRAIN], transform=list(SPLITS)),
        disable_statistics=True,
        # training.input: raw leaves the graph to the Trainer, and Transform writes no transformed splits
        materialize=trainer_reads_transformed,
    ).with_id(TRANSFORM)
    transform.add_upstream_node(schema_gate)  # no Transform on data that failed validation
    drift_nodes = []
    drift_settings = {"drift_config": json.dumps(component_config(config.data.drift)), "on_drift": config.data.on_drift}
    if compiled_window:  # the gate measures the window's last two spans (components/drift_gate.py)
        drift_gate = DriftGate(examples=example_gen.outputs["examples"], statistics=statistics_gen.outputs["statistics"],
                               schema=schema_importer.outputs["schema"], **drift_settings).with_id(DRIFT_GATE)
        transform.add_upstream_node(drift_gate)
        drift_nodes = [drift_gate]
    elif config.data.has_spans:  # no Transform on a span that drifted from the one before (components/drift_gate.py)
        previous = Resolver(
            strategy_class=PreviousSpanStatisticsStrategy,
            statistics=Channel(type=ExampleStatistics, producer_component_id=STATISTICS_GEN, output_key="statistics"),
            examples=example_gen.outputs["examples"],
        ).with_id(PREVIOUS_STATISTICS)
        drift_gate = DriftGate(
            examples=example_gen.outputs["examples"],
            statistics=statistics_gen.outputs["statistics"],
            schema=schema_importer.outputs["schema"],
            previous_statistics=previous.outputs["statistics"],
            previous_examples=previous.outputs["examples"],
            **drift_settings,
        ).with_id(DRIFT_GATE)
        transform.add_upstream_node(drift_gate)
        drift_nodes = [previous, drift_gate]

    # training.warm_start: the Trainer starts from the last blessed model (models/warm_start.py); locally
    # the last one trained on other examples, so a run with nothing new stays cached
    # (components/warm_start_strategy.py); Kubeflow's compiler knows only TFX's own strategy.
    trainer_examples = transform.outputs["transformed_examples"] if trainer_reads_transformed else training_examples
    warm_start_resolver = None
    if config.training.warm_start:
        warm_start_resolver = _blessed_model_resolver(WARM_START_RESOLVER, compiled, LatestBlessedModelOfOtherExamplesStrategy,
                                                      examples=trainer_examples)

    run_parameters = RunParameters(epochs=params["epochs"], learning_rate=params["learning_rate"]).with_id(RUN_PARAMETERS)
    trainer = Trainer(
        run_fn=RUN_FN,
        hyperparameters=run_parameters.outputs["hyperparameters"],
        examples=trainer_examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_importer.outputs["schema"],
        base_model=warm_start_resolver.outputs["model"] if warm_start_resolver else None,
        train_args=trainer_pb2.TrainArgs(splits=[TRAIN]),
        eval_args=trainer_pb2.EvalArgs(splits=[VALIDATION]),  # Keras validation_data: early stopping picks the epoch here
        custom_config=component_config(config),
    ).with_id(TRAINER)

    # The last blessed model is only needed (and only evaluated, which doubles TFMA's work) when a
    # no-regression threshold compares the candidate with it. Locally it is the last blessed model
    # other than the candidate, so a rerun with nothing changed is cached through to the Pusher
    # (components/baseline_strategy.py); Kubeflow's compiler knows only TFX's own strategy.
    baseline_resolver = None
    if config.evaluation.no_regression:
        baseline_resolver = _blessed_model_resolver(BASELINE_RESOLVER, compiled, LatestBlessedOtherModelStrategy,
                                                    candidate=trainer.outputs["model"])
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"] if baseline_resolver else None,
        eval_config=params["eval_config"],
        example_splits=[EVAL],  # only the split no earlier component chose anything on
    ).with_id(EVALUATOR)

    canary = ServingCanary(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        model_name=config.push.model_name,
    ).with_id(SERVING_CANARY)

    pusher = Pusher(
        model=canary.outputs["warmed_model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=canary.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=config.push.model_directory)
        ),
        # TFX's Pusher with atomic, idempotent pushes (components/pusher.py)
        custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPusherExecutor),
    ).with_id(PUSHER)

    components = [example_gen, *([window] if window else []), schema_importer, statistics_gen, example_validator, schema_gate,
                  *drift_nodes, *([analyzer_cache] if analyzer_cache else []), transform,
                  *([warm_start_resolver] if warm_start_resolver else []), run_parameters, trainer]
    return components + ([baseline_resolver] if baseline_resolver else []) + [evaluator, canary, pusher]


def _blessed_model_resolver(node_id: str, compiled: bool, local_strategy: type, **local_inputs: Channel) -> Resolver:
    """A resolver of the latest blessed Model and its ModelBlessing: locally ``local_strategy`` (one
    of components/baseline_strategy.py's, with ``local_inputs``); compiled, TFX's
    LatestBlessedModelStrategy, the only one Kubeflow's compiler knows besides the latest artifact."""
    models = {"model": Channel(type=Model), "model_blessing": Channel(type=ModelBlessing)}
    if compiled:
        return Resolver(strategy_class=LatestBlessedModelStrategy, **models).with_id(node_id)
    return Resolver(strategy_class=local_strategy, **local_inputs, **models).with_id(node_id)


def span_range(window: WindowConfig) -> range_config_pb2.RangeConfig:
    """The window as TFX's RangeConfig: the newest ``spans``, or the fixed range."""
    if window.is_fixed:
        return range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(start_span_number=window.start, end_span_number=window.end))
    return range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=window.spans))


def ingest_span_pipeline(
    config: PipelineConfig, span: int, metadata_connection_config: metadata_store_pb2.ConnectionConfig, beam: BeamChoice
) -> Pipeline:
    """The same pipeline's ExampleGen and StatisticsGen alone, ingesting ``span``: what a run does
    first for each span on disk it has not ingested (pipeline/spans.py), so the window finds its
    Examples in ML Metadata and the drift gate the statistics of the span before the newest."""
    example_gen = make_example_gen(config, span=span).with_id(EXAMPLE_GEN)
    schema_importer = ImportSchemaGen(schema_file=config.schema).with_id(SCHEMA_IMPORTER)
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_importer.outputs["schema"]
    ).with_id(STATISTICS_GEN)
    return Pipeline(
        pipeline_name=config.pipeline.name,
        pipeline_root=config.pipeline.root,
        components=[example_gen, schema_importer, statistics_gen],
        enable_cache=config.pipeline.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam.args),
    )


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
    compiled: bool = False,
    beam: BeamChoice | None = None,
) -> Pipeline:
    """The TFX pipeline for ``config``; ``metadata_connection_config`` None = orchestrator's own.
    ``beam``: the Beam args already settled for this run (default: settled here, pipeline/beam_mode.py)."""
    beam = beam or beam_choice(config, compiled)
    return Pipeline(
        pipeline_name=config.pipeline.name,
        pipeline_root=config.pipeline.root,
        components=create_components(config, compiled),
        enable_cache=config.pipeline.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam.args),
    )
