"""Convert the standard MovieLens CSV layout into JSONL examples with list-valued fields.

Input: ``ratings.csv`` (userId,movieId,rating,timestamp) and ``movies.csv`` (movieId,title,genres
with ``|``). For each rating, in (timestamp, movieId) order per user, one example:

- ``user``: the user id; ``target``: the rated movie; ``target_genres``: its genres;
- ``history``: the user's earlier movie ids, most recent last, at most ``max_history``;
- ``history_ratings``: the ratings the user gave those movies, as tokens (``"4.0"``), aligned with
  ``history`` (the user's rating habits, which a user id alone does not carry to new users);
- ``liked_genres``: genres of the user's earlier movies rated >= ``liked_rating``, most recent
  last, at most ``max_history`` tokens;
- ``target_cf``, ``target_cf_top10``, ``target_similarity_mean``, ``target_similarity_max``:
  item-based collaborative filtering scores of the target against the history, as decile tokens
  (:mod:`pipeline.datasets.item_cf`; from train ratings, out of fold for train examples;
  ``item_cf_tokens=False`` leaves them out);
- ``rating``: the raw rating (the label rule in the config turns it into 0/1).

Only *earlier* ratings feed an example, and each user's last ``eval_per_user`` ratings go to
``eval.jsonl``, the ``validation_per_user`` before them to ``validation.jsonl`` (what the Trainer
early-stops on) and the rest to ``train.jsonl``: a split by time, nothing from the future, and the
ratings the Evaluator gates on come after everything that chose the model. Ratings with fewer than
``min_history`` earlier ratings are skipped (a first rating has no history).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from embedconfig.config import EVAL, SPLITS, TRAIN, VALIDATION
from pipeline.datasets import item_cf


@dataclass(frozen=True)
class MovieLensSummary:
    """What a conversion wrote."""

    train_path: str
    validation_path: str
    eval_path: str
    train_examples: int
    validation_examples: int
    eval_examples: int
    users: int


def _read_movies(path: str) -> dict[int, list[str]]:
    with tf.io.gfile.GFile(path) as f:
        reader = csv.DictReader(io.StringIO(f.read()))
        missing = {"movieId", "genres"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (need movieId,title,genres)")
        genres = {}
        for row in reader:
            g = row["genres"]
            genres[int(row["movieId"])] = [] if g in ("", "(no genres listed)") else g.split("|")
        return genres


def _read_ratings(path: str) -> dict[int, list[tuple[int, int, float]]]:
    by_user: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    with tf.io.gfile.GFile(path) as f:
        reader = csv.DictReader(io.StringIO(f.read()))
        missing = {"userId", "movieId", "rating", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)} (need userId,movieId,rating,timestamp)")
        for row in reader:
            try:
                by_user[int(row["userId"])].append((int(row["timestamp"]), int(row["movieId"]), float(row["rating"])))
            except ValueError as e:
                raise ValueError(f"{path}:{reader.line_num}: {e}") from e
    return by_user


def _split_of(i: int, ratings: int, eval_per_user: int, validation_per_user: int) -> str:
    """The split of a user's ``i``-th rating (in time order) of ``ratings``: the last ones eval, the
    ones before them validation, the rest train."""
    if i >= ratings - eval_per_user:
        return EVAL
    return VALIDATION if i >= ratings - eval_per_user - validation_per_user else TRAIN


def _examples(by_user: dict[int, list[tuple[int, int, float]]], genres: dict[int, list[str]], eval_per_user: int,
              validation_per_user: int, max_history: int, liked_rating: float, min_history: int) -> list[tuple[str, dict]]:
    """(split, example) for every rating with at least ``min_history`` earlier ones, user by user."""
    out = []
    for user in sorted(by_user):
        ratings = sorted(by_user[user])
        history: list[int] = []
        history_ratings: list[str] = []
        liked_genres: list[str] = []
        for i, (_, movie, rating) in enumerate(ratings):
            if len(history) >= min_history:
                example = {
                    "user": user,
                    "history": history[-max_history:],
                    "history_ratings": history_ratings[-max_history:],
                    "liked_genres": liked_genres[-max_history:],
                    "target": movie,
                    "target_genres": genres.get(movie, []),
                    "rating": rating,
                }
                out.append((_split_of(i, len(ratings), eval_per_user, validation_per_user), example))
            history.append(movie)
            history_ratings.append(f"{rating:.1f}")
            if rating >= liked_rating:
                liked_genres.extend(genres.get(movie, []))
    return out


def add_item_cf_tokens(examples: list[tuple[str, dict]]) -> None:
    """Add :mod:`pipeline.datasets.item_cf`'s tokens to every example, in place: similarities from
    the train examples' ratings, out of fold for train examples, deciles of the train scores."""
    similarity = item_cf.ItemSimilarity((e["user"], e["target"], e["rating"]) for split, e in examples if split == TRAIN)
    scores = np.array([similarity.scores(e["user"], e["target"], e["history"], [float(r) for r in e["history_ratings"]],
                                         out_of_fold=split == TRAIN) for split, e in examples]).reshape(len(examples), len(item_cf.CF_SCORES))
    train = np.array([split == TRAIN for split, _ in examples], dtype=bool)
    edges = item_cf.decile_edges(scores[train])
    for (_, example), row in zip(examples, scores, strict=True):
        example.update(item_cf.tokens(row, edges))


def convert_movielens(
    source_dir: str,
    output_dir: str,
    eval_per_user: int = 10,
    max_history: int = 50,
    liked_rating: float = 4.0,
    min_history: int = 1,
    validation_per_user: int = 10,
    item_cf_tokens: bool = True,
) -> MovieLensSummary:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``eval.jsonl`` under ``output_dir`` (local
    paths or bucket URIs)."""
    genres = _read_movies(os.path.join(source_dir, "movies.csv"))
    by_user = _read_ratings(os.path.join(source_dir, "ratings.csv"))
    examples = _examples(by_user, genres, eval_per_user, validation_per_user, max_history, liked_rating, min_history)
    if item_cf_tokens:
        add_item_cf_tokens(examples)
    tf.io.gfile.makedirs(output_dir)
    paths = {split: os.path.join(output_dir, f"{split}.jsonl") for split in SPLITS}
    counts = dict.fromkeys(SPLITS, 0)
    with contextlib.ExitStack() as stack:
        files = {split: stack.enter_context(tf.io.gfile.GFile(path, "w")) for split, path in paths.items()}
        for split, example in examples:
            files[split].write(json.dumps(example) + "\n")
            counts[split] += 1
    return MovieLensSummary(paths[TRAIN], paths[VALIDATION], paths[EVAL], counts[TRAIN], counts[VALIDATION], counts[EVAL], len(by_user))
