"""Run the project's ExampleGen executor directly (a real Beam job, no pipeline around it)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs

from components.example_gen import RawExampleGenExecutor, example_gen_io, reader_custom_config
from embedconfig.config import PipelineConfig


def example_gen_properties(config: PipelineConfig) -> dict:
    """The exec properties ExampleGen gets in a pipeline, for ``config``."""
    base, input_config, output_config = example_gen_io(config.data)
    return {
        standard_component_specs.INPUT_BASE_KEY: base,
        standard_component_specs.INPUT_CONFIG_KEY: json_format.MessageToJson(input_config),
        standard_component_specs.OUTPUT_CONFIG_KEY: json_format.MessageToJson(output_config),
        standard_component_specs.CUSTOM_CONFIG_KEY: json_format.MessageToJson(reader_custom_config(config)),
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    }


def run_example_gen(config: PipelineConfig, out: Path) -> standard_artifacts.Examples:
    """The Examples artifact (train and eval splits under ``out``)."""
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    RawExampleGenExecutor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, example_gen_properties(config))
    return examples
