"""Synthetic click data with a learnable signal, for the built-in example and the tests.

Each of ``num_users`` users prefers two of ``num_categories`` item categories. A row is one
(user, target item) impression with the user's ``interests`` (category tokens, mostly preferred
ones), ``history`` (earlier item ids, mostly from preferred categories, most recent last), the
``target`` item id and its ``target_categories``. ``clicked`` is more likely when the target's
category is one the user prefers (an interaction: the model must read interests/history together
with the target) and when it is one of the generally popular categories (learnable from the
target alone). The label is noisy, so the attainable AUC is below 1.

With ``signal="late"`` the label depends only on whether one of the *last* ``late_window`` items of
``history`` (the longer sequence) is from a popular category; ``interests`` (shorter) is random
and earlier history items only hint at it through the user's tastes: a model must read history
to its end, in order, to learn it.

The rows are written unsplit: the config's ``data.split.hash_buckets`` cut them into train,
validation and eval in ExampleGen.

Days (``write_synthetic_spans``, ``embedpipe data synthetic --spans K``): the same users and tastes
every day, with the day-to-day change a recommender sees: ``NEW_ITEMS_PER_DAY`` new items appear
each day, and each day one category trends (``TRENDING_SHARE`` of the targets come from it, a
different category each day). A broken day (``broken=(span, feature, how)``) has one feature
emptied or collapsed onto one value, as a broken upstream job leaves it; drift must catch it.
"""

from __future__ import annotations

import json
import math
import os
import random
from typing import Any, Iterator

SIGNALS = ("preference", "late")
POPULAR_CATEGORIES = (0, 1, 2, 3)
NEW_ITEMS_PER_DAY = 20
TRENDING_SHARE = 0.15
BREAKAGES = ("empty", "collapse")  # a feature with no values, or every value the same


def _item_category(item: int, num_categories: int) -> int:
    return item % num_categories


def generate_rows(
    rows: int,
    seed: int = 0,
    num_users: int = 200,
    num_items: int = 400,
    num_categories: int = 12,
    max_history: int = 30,
    signal: str = "preference",
    late_window: int = 2,
    shard: int = 0,
    day: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield ``rows`` JSON-ready example dicts; ``shard`` > 0 draws other rows from the same users;
    ``day`` > 0 is a later day of the same users: more items, another trending category."""
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    rng = random.Random(seed)
    prefs = {u: rng.sample(range(num_categories), 2) for u in range(num_users)}
    num_items += NEW_ITEMS_PER_DAY * day
    by_category: dict[int, list[int]] = {c: [] for c in range(num_categories)}
    for item in range(1, num_items + 1):
        by_category[_item_category(item, num_categories)].append(item)
    if shard or day:  # same users and tastes (drawn above from ``seed``), other impressions
        rng = random.Random(seed * 1_000_003 + shard + 7_919 * day)
    trending = day % num_categories if day else None

    def item_from(categories: list[int]) -> int:
        return rng.choice(by_category[rng.choice(categories)])

    for _ in range(rows):
        user = rng.randrange(num_users)
        liked = prefs[user]
        interests = [
            f"topic_{rng.choice(liked) if rng.random() < 0.8 else rng.randrange(num_categories)}"
            for _ in range(rng.randint(1, 5))
        ]
        history = [
            item_from(liked) if rng.random() < 0.75 else rng.randint(1, num_items)
            for _ in range(rng.randint(0, max_history))
        ]
        if trending is not None and rng.random() < TRENDING_SHARE:
            target = rng.choice(by_category[trending])
        else:
            target = rng.randint(1, num_items)
        category = _item_category(target, num_categories)
        if signal == "preference":
            logit = 2.5 * (category in liked) + 2.0 * (category in POPULAR_CATEGORIES) - 2.5
        else:
            recent = {_item_category(i, num_categories) for i in history[-late_window:]}
            logit = 4.0 if recent & set(POPULAR_CATEGORIES) else -3.0
            interests = [f"topic_{rng.randrange(num_categories)}" for _ in interests]  # no signal here
        clicked = int(rng.random() < 1.0 / (1.0 + math.exp(-logit)))
        yield {
            "user": f"u{user}",
            "interests": interests,
            "history": history,
            "target": target,
            "target_categories": [f"cat_{category}"] + ([f"tag_{target % 7}"] if target % 3 == 0 else []),
            "clicked": clicked,
        }


def write_synthetic(output_dir: str, rows: int, seed: int = 0, signal: str = "preference", shards: int = 1) -> str:
    """Write ``examples.jsonl`` under ``output_dir`` (a local path or a bucket URI), or with
    ``shards`` > 1 ``examples-0000i-of-0000N.jsonl`` files of the same users; returns the file's
    path, or the directory for shards. Rows are streamed to disk, never held in memory."""
    import tensorflow as tf

    tf.io.gfile.makedirs(output_dir)
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    for shard in range(shards):
        name = "examples.jsonl" if shards == 1 else f"examples-{shard:05d}-of-{shards:05d}.jsonl"
        shard_rows = rows // shards + (1 if shard < rows % shards else 0)
        with tf.io.gfile.GFile(os.path.join(output_dir, name), "w") as f:
            for row in generate_rows(shard_rows, seed=seed, signal=signal, shard=shard):
                f.write(json.dumps(row) + "\n")
    return os.path.join(output_dir, "examples.jsonl") if shards == 1 else output_dir


def write_synthetic_spans(output_dir: str, rows_per_span: int, spans: int, seed: int = 0,
                          broken: tuple[int, str, str] | None = None) -> list[str]:
    """Write days 1..``spans`` as ``span-<k>/examples.jsonl`` under ``output_dir`` (what a config's
    ``data.path: <output_dir>/span-{SPAN}/`` reads), the same users every day; returns the files.
    ``broken``: (span, feature, "empty" | "collapse"): that day's feature has no values, or one value."""
    import tensorflow as tf

    if broken is not None:
        span, feature, how = broken
        if how not in BREAKAGES or not 1 <= span <= spans:
            raise ValueError(f"broken must be (a span in 1..{spans}, a feature, one of {BREAKAGES}), got {broken}")
    paths = []
    for day in range(1, spans + 1):
        directory = os.path.join(output_dir, f"span-{day}")
        tf.io.gfile.makedirs(directory)
        path = os.path.join(directory, "examples.jsonl")
        with tf.io.gfile.GFile(path, "w") as f:
            for row in generate_rows(rows_per_span, seed=seed, day=day):
                if broken is not None and broken[0] == day:
                    row[broken[1]] = _broken(row[broken[1]], broken[2])
                f.write(json.dumps(row) + "\n")
        paths.append(path)
    return paths


def _broken(value: Any, how: str) -> Any:
    """What a broken upstream job leaves of a feature's value."""
    if how == "empty":
        return [] if isinstance(value, list) else None
    if isinstance(value, list):  # every value the same, in every row
        return [1] * len(value) if value and isinstance(value[0], int) else ["unknown"] * len(value)
    return 1 if isinstance(value, int) else "unknown"
