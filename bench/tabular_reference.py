"""A non-neural yardstick for the MovieLens AUC: gradient-boosted trees on engineered features.

    .venv/bin/python bench/tabular_reference.py --data /tmp/ml/examples3 [--config configs/movielens.yaml]

The rows are the ones ``embedpipe data movielens`` writes (train / validation / eval JSONL), so
the trees see the same examples, the same label rule and the same splits as the pipeline and
``bench/auc_probe.py``: fitted on train, the number of boosting rounds chosen on validation, AUC
on eval (which chooses nothing). scikit-learn's ``HistGradientBoostingClassifier`` (pinned in
constraints.txt: TFX requires scikit-learn).

Two feature sets, each a row of the table:

- ``GBDT, user + item statistics``: from the example's own ``history`` / ``history_ratings``
  (the sequences the neural model sees): mean, spread and recent mean of the user's ratings, the
  share the label rule calls positive; the user's ratings of earlier movies that share a genre with the target; the
  target's genres; the target's smoothed positive rate in train and its count.
- ``GBDT, + item-item CF``: plus the four item-based collaborative filtering scores of
  :mod:`pipeline.datasets.item_cf` (the ones ``embedpipe data movielens`` writes as tokens for the
  neural model), here as numbers.

Statistics of train labels are computed *out of fold* for train rows (the users in the other four
of five folds): leave-one-out target statistics leak the label (a first version of this script
fell from 0.74 to 0.65 on validation as the trees learnt that leak). Validation and eval rows use all
of train. Train is a per-user time split, so, as with the neural model's item embeddings, other
users' train ratings may be later in time than an eval rating.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embedconfig.config import PipelineConfig, label_is_positive  # noqa: E402
from pipeline.datasets.item_cf import FOLDS, ItemSimilarity, fold_of  # noqa: E402

PRIOR_WEIGHT = 10  # pseudo-count of the smoothed positive rate
ROUNDS = (50, 100, 200, 400)  # boosting rounds tried; validation chooses
LEARNING_RATE = 0.05
FEATURE_SETS = {"GBDT": "GBDT, user + item statistics", "GBDT-CF": "GBDT, + item-item CF"}  # short name -> what it is


class TabularFeatures:
    """Engineered features of MovieLens rows (fields as ``embedpipe data movielens`` writes them)."""

    def __init__(self, config: PipelineConfig, train: list[dict[str, Any]], other: Sequence[list[dict[str, Any]]]):
        self.config = config
        self.genres = {r["target"]: r["target_genres"] for rows in (train, *other) for r in rows}
        self.genre_names = sorted({g for gs in self.genres.values() for g in gs})
        movies = sorted(set(self.genres) | {m for rows in (train, *other) for r in rows for m in r["history"]})
        self.movie_index = {m: i for i, m in enumerate(movies)}
        users = sorted({r["user"] for r in train})
        user_index = {u: i for i, u in enumerate(users)}
        folds = np.array([fold_of(u) for u in users])

        ratings = np.zeros((len(users), len(movies)), dtype=np.float32)
        positive = np.zeros_like(ratings)
        for r in train:
            u, m = user_index[r["user"]], self.movie_index[r["target"]]
            ratings[u, m] = r["rating"]
            positive[u, m] = self.label(r)
        rated = ratings > 0
        # the target's positive rate: all of train, and per fold without that fold's users
        self.positives, self.counts = positive.sum(0), rated.sum(0).astype(np.float32)
        self.fold_positives = [positive[folds != k].sum(0) for k in range(FOLDS)]
        self.fold_counts = [rated[folds != k].sum(0).astype(np.float32) for k in range(FOLDS)]
        self.prior = self.positives.sum() / self.counts.sum()
        self.similarity = ItemSimilarity((r["user"], r["target"], r["rating"]) for r in train)

    def label(self, row: dict[str, Any]) -> int:
        return int(label_is_positive(row[self.config.label.name], self.config.label))

    def _positive(self, ratings: np.ndarray) -> np.ndarray:
        return np.array([label_is_positive(x, self.config.label) for x in ratings], dtype=np.float64)

    def matrix(self, rows: list[dict[str, Any]], is_train: bool, with_cf: bool) -> np.ndarray:
        """One feature row per example; train rows see only the other folds' label statistics."""
        return np.array([self._row(r, is_train, with_cf) for r in rows], dtype=np.float64)

    def _row(self, r: dict[str, Any], is_train: bool, with_cf: bool) -> list[float]:
        k = fold_of(r["user"])
        t = self.movie_index[r["target"]]
        pos, cnt = (self.fold_positives[k][t], self.fold_counts[k][t]) if is_train else (self.positives[t], self.counts[t])
        given = np.array([float(x) for x in r["history_ratings"]]) if r["history_ratings"] else np.array([np.nan])
        liked = self._positive(given)
        target_genres = set(r["target_genres"])
        same_genre = np.array([float(x) for m, x in zip(r["history"], r["history_ratings"], strict=True) if target_genres & set(self.genres.get(m, ()))])
        row = [
            np.nanmean(given), np.nanstd(given), len(r["history"]), np.nanmean(given[-5:]), given[-1],
            liked.mean(), liked[-10:].mean(),
            (pos + PRIOR_WEIGHT * self.prior) / (cnt + PRIOR_WEIGHT), np.log1p(cnt),
            same_genre.mean() if len(same_genre) else np.nan, len(same_genre),
            self._positive(same_genre).mean() if len(same_genre) else np.nan,
        ]
        row += [float(g in target_genres) for g in self.genre_names]
        if with_cf:
            row += self.cf_scores(r, is_train)
        return row

    def cf_scores(self, r: dict[str, Any], is_train: bool) -> list[float]:
        """``CF_SCORES`` of one row, as ``embedpipe data movielens`` tokenises them (out of fold for train rows)."""
        return self.similarity.scores(r["user"], r["target"], r["history"], [float(x) for x in r["history_ratings"]], out_of_fold=is_train)


def run_references(config: PipelineConfig, rows: dict[str, list[dict[str, Any]]], seed: int) -> dict[str, dict[str, Any]]:
    """Both feature sets: fit on train, rounds chosen on validation, AUC on eval (auc_probe's run format)."""
    start = time.perf_counter()
    features = TabularFeatures(config, rows["train"], (rows["validation"], rows["eval"]))
    setup = time.perf_counter() - start
    labels = {s: np.array([features.label(r) for r in rows[s]]) for s in rows}
    results = {}
    for key, with_cf in (("GBDT", False), ("GBDT-CF", True)):
        start = time.perf_counter()
        x = {s: features.matrix(rows[s], s == "train", with_cf) for s in rows}
        tried = []
        for rounds in ROUNDS:
            model = HistGradientBoostingClassifier(learning_rate=LEARNING_RATE, max_iter=rounds, early_stopping=False, random_state=seed)
            model.fit(x["train"], labels["train"])
            tried.append((roc_auc_score(labels["validation"], model.predict_proba(x["validation"])[:, 1]),
                          roc_auc_score(labels["eval"], model.predict_proba(x["eval"])[:, 1]), rounds))
        val_auc, eval_auc, rounds = max(tried)
        results[key] = {"seed": seed, "auc": eval_auc, "epochs": rounds, "epochs_run": ROUNDS[-1], "val_auc": [round(v, 4) for v, _, _ in tried],
                        "fit_seconds": time.perf_counter() - start + setup, "features": x["train"].shape[1]}
    return results


def main() -> None:
    from bench.keras_reference import read_jsonl
    from bench.pipeline_wall_time import machine
    from embedconfig.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory with train.jsonl, validation.jsonl, eval.jsonl")
    parser.add_argument("--config", default="configs/movielens.yaml", help="for the label rule")
    parser.add_argument("--output", default="bench/out/tabular_reference.json")
    args = parser.parse_args()
    config = load_config(args.config)
    rows = {s: read_jsonl(os.path.join(args.data, f"{s}.jsonl")) for s in ("train", "validation", "eval")}
    # one run: without early stopping or subsampling the trees do not use their seed
    runs = [run_references(config, rows, 0)]
    when = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"machine: {machine()}; date {when}\ndata: {os.path.abspath(args.data)} "
          f"({len(rows['train'])} train / {len(rows['validation'])} validation / {len(rows['eval'])} eval)\n")
    print(f"| {'reference':<32} | eval AUC | rounds (validation) | fit s |\n|{'-' * 34}|---------:|--------------------:|------:|")
    for key, name in FEATURE_SETS.items():
        for run in runs:
            print(f"| {name:<32} | {run[key]['auc']:.4f} | {run[key]['epochs']:>19} | {run[key]['fit_seconds']:>5.0f} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"argv": sys.argv, "machine": machine(), "date": when, "data": os.path.abspath(args.data), "runs": runs}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
