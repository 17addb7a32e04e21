"""Run the project's ExampleGen executor directly (a real Beam job, no pipeline around it)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs

from components.example_gen import RawExampleGenExecutor, example_gen_io, reader_custom_config
from embedconfig.config import PipelineConfig
from records.raw_records import ReaderSettings


def example_gen_properties(config: PipelineConfig) -> dict:
    """The exec properties ExampleGen gets in a pipeline, for ``config``."""
    base, input_config, output_config = example_gen_io(config.data)
    return {
        standard_component_specs.INPUT_BASE_KEY: base,
        standard_component_specs.INPUT_CONFIG_KEY: json_format.MessageToJson(input_config),
        # file splits (data.split.files) name their splits in the input config, as the component does
        standard_component_specs.OUTPUT_CONFIG_KEY: json_format.MessageToJson(output_config or example_gen_pb2.Output()),
        standard_component_specs.CUSTOM_CONFIG_KEY: json_format.MessageToJson(reader_custom_config(ReaderSettings.of(config))),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }


def beam_context(beam_args: list[str] | None):
    """An executor context carrying ``beam_args`` (None: the executor's default, DirectRunner)."""
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor

    return BaseBeamExecutor.Context(beam_pipeline_args=beam_args) if beam_args else None


def run_example_gen(config: PipelineConfig, out: Path, beam_args: list[str] | None = None) -> standard_artifacts.Examples:
    """The Examples artifact (its splits under ``out``)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    RawExampleGenExecutor(beam_context(beam_args)).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, example_gen_properties(config))
    return examples


def run_import_example_gen(config: PipelineConfig, tfrecord_dir: Path, out: Path,
                           beam_args: list[str] | None = None) -> standard_artifacts.Examples:
    """TFX's own ImportExampleGen on the TFRecord files in ``tfrecord_dir``, split as ``config`` splits."""
    from tfx.components.example_gen.import_example_gen.executor import Executor as ImportExampleGenExecutor

    properties = example_gen_properties(config)
    properties[standard_component_specs.INPUT_BASE_KEY] = str(tfrecord_dir)
    properties[standard_component_specs.INPUT_CONFIG_KEY] = json_format.MessageToJson(
        example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="single_split", pattern="*")]))
    del properties[standard_component_specs.CUSTOM_CONFIG_KEY]
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    ImportExampleGenExecutor(beam_context(beam_args)).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
    return examples
