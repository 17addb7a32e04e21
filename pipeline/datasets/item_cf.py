"""Item-based collaborative filtering scores of a target movie, as tokens a model embeds.

How did this user rate the movies that other users rate like this one? The similarity of two
movies is the cosine of their columns in the train ratings, each rating minus its user's mean
(classic item-based CF). For one example (a user's ``history`` with ``history_ratings``, and a
``target``) the scores are (``CF_SCORES``):

- ``cf``: the similarity-weighted mean of the user's ratings of the history movies, each minus the
  mean of those ratings; ``cf_top10``: the same over the 10 history movies most similar to the target;
- ``similarity_mean`` / ``similarity_max``: how close the history is to the target at all.

Each score becomes one of ten tokens, its decile among the train examples' scores (``q0`` .. ``q9``;
``none`` without a history), so it enters the model as one more categorical feature with its own
small embedding. On MovieLens-100K these four tokens lift the model's eval AUC, in memory (issue 15;
bench/RESULTS.md, "Issue 15's in-memory probes: what was tried on the way to 0.81") and through the
pipeline (bench/RESULTS.md, "The variant table on the item-CF base"): the co-rating signal the
end-to-end embeddings did not learn from 80K rows.

The scores use other users' train labels, so train examples get them *out of fold*: users fall
into ``FOLDS`` folds by id, and a train example's similarities come from the users of the other
folds only. With its own rating inside, a train example's score would carry some of its label
(leave-one-out label statistics are the classic form of that leak: in bench/tabular_reference.py's
first version, gradient-boosted trees lost validation AUC as they learnt it;
bench/RESULTS.md, "Issue 15's in-memory probes: what was tried on the way to 0.81").
Validation and eval examples use all of train.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np
from scipy import sparse

CF_SCORES = ("cf", "cf_top10", "similarity_mean", "similarity_max")
TOKEN_FEATURES = ("target_cf", "target_cf_top10", "target_similarity_mean", "target_similarity_max")  # aligned with CF_SCORES
FOLDS = 5
TOP_SIMILAR = 10
NO_HISTORY = "none"
_DECILES = np.linspace(0.0, 1.0, 11)[1:-1]
_CACHED_ROWS = 8192  # similarity rows kept: all of MovieLens-100K's (1,682 movies x 6)


def fold_of(user: int) -> int:
    """The fold of a user's train examples."""
    return int(user) % FOLDS


class ItemSimilarity:
    """Cosine similarities of movies over user-mean-centred train ratings, whole and per fold."""

    def __init__(self, train_ratings: Iterable[tuple[int, int, float]]):
        """``train_ratings``: (user, movie, rating) of the train split; a user's later rating of the
        same movie replaces an earlier one."""
        latest: dict[tuple[int, int], float] = {}
        for user, movie, rating in train_ratings:
            latest[(int(user), int(movie))] = float(rating)
        users = sorted({u for u, _ in latest})
        movies = sorted({m for _, m in latest})
        self._user_index = {u: i for i, u in enumerate(users)}
        self._movie_index = {m: i for i, m in enumerate(movies)}
        rows = np.array([self._user_index[u] for u, _ in latest], dtype=np.int64)
        cols = np.array([self._movie_index[m] for _, m in latest], dtype=np.int64)
        values = np.array(list(latest.values()), dtype=np.float64)
        sums = np.bincount(rows, weights=values, minlength=len(users))
        counts = np.bincount(rows, minlength=len(users))
        centred = values - (sums / np.maximum(counts, 1))[rows]
        user_folds = np.array([fold_of(u) for u in users], dtype=np.int64)
        shape = (len(users), len(movies))
        self._matrices = {None: sparse.csc_matrix((centred, (rows, cols)), shape=shape)}
        for k in range(FOLDS):
            keep = user_folds[rows] != k
            self._matrices[k] = sparse.csc_matrix((centred[keep], (rows[keep], cols[keep])), shape=shape)
        self._norms = {k: np.sqrt(np.asarray(m.multiply(m).sum(axis=0)).ravel()) for k, m in self._matrices.items()}
        self._row = lru_cache(maxsize=_CACHED_ROWS)(self._compute_row)

    def _compute_row(self, movie: int, fold: int | None) -> np.ndarray:
        matrix, norms, j = self._matrices[fold], self._norms[fold], self._movie_index[movie]
        dots = np.asarray((matrix.T @ matrix[:, j]).todense()).ravel()
        denominators = norms * norms[j]
        row = np.divide(dots, denominators, out=np.zeros_like(dots), where=denominators > 0)
        row[j] = 0.0
        return row

    def similarities(self, target: int, history: Sequence[int], fold: int | None) -> np.ndarray:
        """Similarity of ``target`` to each history movie (0 for a movie without train ratings),
        from all train users (``fold=None``) or from those outside ``fold``."""
        if target not in self._movie_index:
            return np.zeros(len(history))
        row = self._row(target, fold)
        return np.array([row[self._movie_index[m]] if m in self._movie_index else 0.0 for m in history])

    def scores(self, user: int, target: int, history: Sequence[int], ratings: Sequence[float], out_of_fold: bool) -> list[float]:
        """``CF_SCORES`` of one example (NaN without a history); ``out_of_fold`` for train examples."""
        if not history:
            return [np.nan] * len(CF_SCORES)
        sims = self.similarities(target, history, fold_of(user) if out_of_fold else None)
        given = np.asarray(ratings, dtype=np.float64)
        centred = given - given.mean()
        top = np.argsort(-sims, kind="stable")[:TOP_SIMILAR]
        return [
            float((sims * centred).sum() / (np.abs(sims).sum() + 1e-6)),
            float((sims[top] * centred[top]).sum() / (np.abs(sims[top]).sum() + 1e-6)),
            float(sims.mean()),
            float(sims.max()),
        ]


def decile_edges(train_scores: np.ndarray) -> list[np.ndarray]:
    """Per score (column), the nine cut points of its train values."""
    columns = [train_scores[:, j][~np.isnan(train_scores[:, j])] for j in range(train_scores.shape[1])]
    return [np.quantile(c, _DECILES) if len(c) else np.array([]) for c in columns]  # no train scores: all "q0"


def tokens(scores: Sequence[float], edges: list[np.ndarray]) -> dict[str, str]:
    """One example's scores as ``TOKEN_FEATURES`` -> ``q0`` .. ``q9`` (or ``none``)."""
    return {name: NO_HISTORY if np.isnan(v) else f"q{int(np.searchsorted(e, v))}"
            for name, v, e in zip(TOKEN_FEATURES, scores, edges, strict=True)}
