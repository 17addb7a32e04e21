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
from tfx import types
from tfx.dsl.components.common import resolver

from components.lineage import examples_read_by_producer

CACHE_KEY = "cache"
EXAMPLES_KEY = "examples"  # the window this Transform run analyses


class AnalyzerCacheOfAnotherWindowStrategy(resolver.ResolverStrategy):
    """The newest TransformCache whose Transform execution read other Examples than ``examples``."""

    def resolve_artifacts(
        self, store: mlmd.MetadataStore, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        window = {a.id for a in input_dict.get(EXAMPLES_KEY, [])}
        for cache in sorted(input_dict.get(CACHE_KEY, []), key=lambda a: a.id, reverse=True):
            if {a.id for a in examples_read_by_producer(store, cache.id)} != window:
                return {CACHE_KEY: [cache], EXAMPLES_KEY: []}
        return {CACHE_KEY: [], EXAMPLES_KEY: []}

