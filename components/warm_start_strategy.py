"""The Trainer's base model (``training.warm_start``): the latest blessed model trained on other examples.

TFX's LatestBlessedModelStrategy returns the latest blessed model. On a run with nothing new (the
same window, a retry, a scheduled run before the next span lands) that is the model the last run
trained on these very examples: the Trainer's inputs differ from that run's (another base model),
so it misses the cache, trains again from its own output and pushes a new version of the same
data's model, on every rerun. Leaving out the models trained on the examples this Trainer reads
gives a rerun the last run's base model, so the Trainer and everything after it come from the
cache; a run with a new span starts from the model of the window before it.

Kubeflow's compiler only knows TFX's own strategies (tfx/orchestration/kubeflow/v2/step_builder.py),
so compiled pipelines keep LatestBlessedModelStrategy (docs/KUBEFLOW.md, "Spans").
"""

from __future__ import annotations

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

from components.lineage import examples_read_by_producer

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
EXAMPLES_KEY = "examples"  # what this run's Trainer reads


class LatestBlessedModelOfOtherExamplesStrategy(LatestBlessedModelStrategy):
    """The latest blessed Model (and its ModelBlessing) whose Trainer read other Examples than ``examples``."""

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        examples = {a.id for a in input_dict.get(EXAMPLES_KEY, [])}
        models = [m for m in input_dict.get(MODEL_KEY, []) if {a.id for a in examples_read_by_producer(store, m.id)} != examples]
        blessings = list(input_dict.get(MODEL_BLESSING_KEY, []))
        result = {MODEL_KEY: [], MODEL_BLESSING_KEY: [], EXAMPLES_KEY: []}
        if models and blessings:
            result.update(self._resolve({MODEL_KEY: models, MODEL_BLESSING_KEY: blessings}, MODEL_KEY, MODEL_BLESSING_KEY))
        return result
