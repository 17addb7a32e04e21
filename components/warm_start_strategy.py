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

from components.baseline_strategy import LatestBlessedModelExceptStrategy
from components.lineage import examples_read_by_producer

EXAMPLES_KEY = "examples"  # what this run's Trainer reads


class LatestBlessedModelOfOtherExamplesStrategy(LatestBlessedModelExceptStrategy):
    """The latest blessed Model (and its ModelBlessing) whose Trainer read other Examples than ``examples``."""

    def leaves_out(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]], model: types.Artifact) -> bool:
        examples = {a.id for a in input_dict.get(EXAMPLES_KEY, [])}
        return {a.id for a in examples_read_by_producer(store, model.id)} == examples
