"""The Evaluator's baseline: the latest blessed model that is not the candidate itself.

TFX's LatestBlessedModelStrategy returns the latest blessed model, which on a rerun with nothing
changed is the cached candidate: the Evaluator's inputs then differ from the first run's (a
baseline appeared), so it misses the cache and evaluates the same model twice to compare it with
itself, nearly all of a rerun's time
(bench/RESULTS.md, "The reference: 107.7 s at 59d311e (2026-11-28)").
Leaving the candidate out gives the rerun the first run's inputs, so the Evaluator, the canary and
the Pusher come from the cache; a new candidate is still compared with the model blessed before it.

Kubeflow's compiler only knows TFX's own strategies (tfx/orchestration/kubeflow/v2/step_builder.py),
so compiled pipelines keep LatestBlessedModelStrategy; there the resolver runs as its own task
before the Trainer's new model exists.
"""

from __future__ import annotations

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
CANDIDATE_KEY = "candidate"  # the Trainer's model of this run


class LatestBlessedModelExceptStrategy(LatestBlessedModelStrategy):
    """TFX's latest blessed Model (and its ModelBlessing), among the models ``leaves_out`` keeps; the
    resolver's other inputs resolve to nothing. The one mechanism behind the Evaluator's baseline and
    the Trainer's warm-start base model (components/warm_start_strategy.py)."""

    def leaves_out(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]], model: types.Artifact) -> bool:
        raise NotImplementedError

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        models = [m for m in input_dict.get(MODEL_KEY, []) if not self.leaves_out(store, input_dict, m)]
        blessings = list(input_dict.get(MODEL_BLESSING_KEY, []))
        result = {MODEL_KEY: [], MODEL_BLESSING_KEY: [], **{key: [] for key in input_dict}}
        if models and blessings:
            result.update(self._resolve({MODEL_KEY: models, MODEL_BLESSING_KEY: blessings}, MODEL_KEY, MODEL_BLESSING_KEY))
        return result


class LatestBlessedOtherModelStrategy(LatestBlessedModelExceptStrategy):
    """The latest blessed Model (and its ModelBlessing) other than the ``candidate`` channel's."""

    def leaves_out(self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]], model: types.Artifact) -> bool:
        return model.id in {a.id for a in input_dict.get(CANDIDATE_KEY, [])}
