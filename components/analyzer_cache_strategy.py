"""Transform's analyzer cache for a window of spans: the newest cache written for another window.

Each Transform run writes a new ``updated_analyzer_cache`` artifact. Given the newest one, a run
whose window has not moved would see new Transform inputs every time, miss TFX's cache, and take
the Trainer and everything after it along (measured: a run with nothing new re-ran Transform,
tests/test_daily_runs.py). The newest cache written from another window is what the last run with
this window was given too, so an unchanged window finds Transform, and all after it, in the cache;
a window that moved by a day reads every span it shares with that window from the cache.
"""

from __future__ import annotations

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.dsl.components.common import resolver

CACHE_KEY = "cache"
EXAMPLES_KEY = "examples"  # the window this Transform run analyses


class AnalyzerCacheOfAnotherWindowStrategy(resolver.ResolverStrategy):
    """The newest TransformCache whose Transform execution read other Examples than ``examples``."""

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        window = {a.id for a in input_dict.get(EXAMPLES_KEY, [])}
        for cache in sorted(input_dict.get(CACHE_KEY, []), key=lambda a: a.id, reverse=True):
            if _examples_read_by_producer(store, cache.id) != window:
                return {CACHE_KEY: [cache], EXAMPLES_KEY: []}
        return {CACHE_KEY: [], EXAMPLES_KEY: []}


def _examples_read_by_producer(store: mlmd.MetadataStore, artifact_id: int) -> set[int]:
    """The ids of the Examples artifacts the execution that wrote ``artifact_id`` read."""
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == metadata_store_pb2.Event.OUTPUT]
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids(producers) if e.type == metadata_store_pb2.Event.INPUT]
    examples_type = store.get_artifact_type("Examples").id
    return {a.id for a in store.get_artifacts_by_id(inputs) if a.type_id == examples_type}
