"""How the pipeline wires Transform to the Trainer for each ``training.input`` (built, not run: the
run of the default is tests/test_pipeline_e2e.py; the rows both inputs give, tests/test_trainer_input.py)."""

from __future__ import annotations

import pytest

from embedconfig.config import parse_config
from pipeline.pipeline_factory import EXAMPLE_GEN, TRAINER, TRANSFORM, create_components


@pytest.mark.parametrize("trainer_input", ["raw", "transformed"])
def test_transform_writes_transformed_examples_only_for_a_trainer_that_reads_them(raw_config: dict, trainer_input: str) -> None:
    raw_config["training"]["input"] = trainer_input
    components = {c.id: c for c in create_components(parse_config(raw_config), compiled=True)}
    materialized = "transformed_examples" in components[TRANSFORM].outputs
    assert materialized == (trainer_input == "transformed")
    examples = components[TRAINER].inputs["examples"]
    assert examples.producer_component_id == (TRANSFORM if materialized else EXAMPLE_GEN)
    assert components[TRAINER].inputs["transform_graph"].producer_component_id == TRANSFORM
