"""Example data: the synthetic generator's signal and the MovieLens converter's time split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.datasets.movielens import convert_movielens
from pipeline.datasets.synthetic import POPULAR_CATEGORIES, generate_rows, write_synthetic


def test_synthetic_is_deterministic_and_has_a_signal() -> None:
    rows = list(generate_rows(3000, seed=1))
    assert rows == list(generate_rows(3000, seed=1))
    popular = [r["clicked"] for r in rows if r["target"] % 12 in POPULAR_CATEGORIES]
    other = [r["clicked"] for r in rows if r["target"] % 12 not in POPULAR_CATEGORIES]
    assert sum(popular) / len(popular) > sum(other) / len(other) + 0.2
    assert any(r["history"] == [] for r in rows), "empty sequences occur"


def test_synthetic_shards_share_users_and_count_every_row(tmp_path: Path) -> None:
    """bench/scale.py writes large data in shards: same users and tastes, other rows, none lost."""
    out = write_synthetic(str(tmp_path), rows=1001, seed=3, shards=3)
    files = sorted(Path(out).glob("*.jsonl"))
    assert [f.name for f in files] == [f"examples-0000{i}-of-00003.jsonl" for i in range(3)]
    shards = [[json.loads(line) for line in f.read_text().splitlines()] for f in files]
    assert [len(s) for s in shards] == [334, 334, 333]
    assert shards[0] == list(generate_rows(334, seed=3)), "shard 0 is the unsharded stream"
    assert shards[1] != shards[0][:334]
    # a user's interests come from the same two preferred topics in every shard (80% of tokens)
    def topics(rows: list[dict]) -> dict[int, set[str]]:
        seen: dict[int, list[str]] = {}
        for r in rows:
            seen.setdefault(r["user"], []).extend(r["interests"])
        return {u: {t for t in ts if ts.count(t) >= 3} for u, ts in seen.items()}
    first, second = topics(shards[0]), topics(shards[1])
    shared = [u for u in first if u in second and first[u] and second[u]]
    assert shared and sum(bool(first[u] & second[u]) for u in shared) / len(shared) > 0.8


def test_late_signal_lives_in_the_end_of_history() -> None:
    rows = list(generate_rows(3000, seed=2, signal="late"))
    hot = [any(i % 12 in POPULAR_CATEGORIES for i in r["history"][-2:]) for r in rows]
    hit = [r["clicked"] for r, h in zip(rows, hot, strict=True) if h]
    miss = [r["clicked"] for r, h in zip(rows, hot, strict=True) if not h]
    assert sum(hit) / len(hit) > 0.9 and sum(miss) / len(miss) < 0.1
    assert 0.3 < len(hit) / len(rows) < 0.7, "both classes are common"


def _write_movielens(d: Path) -> None:
    d.mkdir()
    (d / "movies.csv").write_text('movieId,title,genres\n1,A (1995),Comedy|Drama\n2,"B, The (1996)",Action\n3,C (1997),(no genres listed)\n')
    rows = ["userId,movieId,rating,timestamp"]
    # user 7 rates 3 at t=10 and 1 and 2 both at t=20: order is (timestamp, movieId)
    rows += ["7,2,5.0,20", "7,3,2.0,10", "7,1,4.0,20", "7,3,3.0,30"]
    rows += ["8,1,1.0,5", "8,2,4.5,6"]
    (d / "ratings.csv").write_text("\n".join(rows) + "\n")


def test_movielens_examples_use_only_the_past(tmp_path: Path) -> None:
    _write_movielens(tmp_path / "src")
    s = convert_movielens(str(tmp_path / "src"), str(tmp_path / "out"), eval_per_user=1, validation_per_user=1)
    train = [json.loads(line) for line in open(s.train_path)]
    validation = [json.loads(line) for line in open(s.validation_path)]
    evaluation = [json.loads(line) for line in open(s.eval_path)]
    assert (s.train_examples, s.validation_examples, s.eval_examples, s.users) == (1, 1, 2, 2)
    u7 = sorted((e for e in train + validation + evaluation if e["user"] == 7), key=lambda e: len(e["history"]))
    # first rating (movie 3 at t=10) has no history and is skipped
    assert [(e["target"], e["history"]) for e in u7] == [(1, [3]), (2, [3, 1]), (3, [3, 1, 2])]
    assert u7[1]["liked_genres"] == ["Comedy", "Drama"], "movie 1 was rated 4.0 before movie 2"
    assert u7[2]["liked_genres"] == ["Comedy", "Drama", "Action"]
    assert u7[0]["target_genres"] == ["Comedy", "Drama"] and u7[2]["target_genres"] == []
    assert [e["target"] for e in evaluation if e["user"] == 7] == [3], "the user's last rating is eval"
    assert [e["target"] for e in validation] == [2], "the one before it validation, after everything in train"
    assert [e["target"] for e in train] == [1]


def test_movielens_cli_writes_validation_beside_train_and_eval(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    _write_movielens(tmp_path / "src")
    assert main(["data", "movielens", "--source", str(tmp_path / "src"), "--output", str(tmp_path / "out"),
                 "--eval-per-user", "1", "--validation-per-user", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.jsonl", "train.jsonl", "validation.jsonl"]
    assert "1 validation examples" in capsys.readouterr().out


def test_item_cf_similarity_is_the_cosine_of_user_centred_ratings() -> None:
    from pipeline.datasets.item_cf import ItemSimilarity

    # users 1 and 2 (both fold 1/2 of 5) rate movies 10 and 11 alike and movie 12 the other way
    ratings = [(1, 10, 5.0), (1, 11, 5.0), (1, 12, 1.0), (2, 10, 2.0), (2, 11, 2.0), (2, 12, 5.0)]
    sims = ItemSimilarity(ratings).similarities(10, [11, 12, 10, 99], fold=None)
    assert sims[0] == pytest.approx(1.0) and sims[1] == pytest.approx(-1.0)
    assert sims[2] == 0.0, "a movie is not its own neighbour"
    assert sims[3] == 0.0, "a movie without train ratings has no similarity"


def test_item_cf_scores_of_a_train_example_do_not_see_its_own_rating() -> None:
    """Out of fold: a train example's scores come from the other folds' users, so its own label
    (the rating of the target) cannot leak into them."""
    from pipeline.datasets.item_cf import FOLDS, ItemSimilarity

    rng = np.random.default_rng(0)
    ratings = [(u, m, float(rng.integers(1, 6))) for u in range(40) for m in range(12) if rng.random() < 0.7]
    user, target, history = 3, 5, [0, 1, 2, 7]
    given = [4.0, 2.0, 5.0, 3.0]
    ratings = [(u, m, r) for u, m, r in ratings if (u, m) != (user, target)]
    liked, disliked = ratings + [(user, target, 5.0)], ratings + [(user, target, 1.0)]  # the example's label, both ways
    before = ItemSimilarity(liked).scores(user, target, history, given, out_of_fold=True)
    after = ItemSimilarity(disliked).scores(user, target, history, given, out_of_fold=True)
    assert before == pytest.approx(after), "the example's own rating changed its out-of-fold scores"
    in_fold = ItemSimilarity(liked).scores(user, target, history, given, out_of_fold=False)
    assert in_fold != pytest.approx(ItemSimilarity(disliked).scores(user, target, history, given, out_of_fold=False)), \
        "the check above would pass vacuously"
    assert FOLDS > 1


def test_movielens_writes_item_cf_tokens_unless_told_not_to(tmp_path: Path) -> None:
    from pipeline.datasets.item_cf import TOKEN_FEATURES

    _write_movielens(tmp_path / "src")
    s = convert_movielens(str(tmp_path / "src"), str(tmp_path / "out"), eval_per_user=1, validation_per_user=1)
    rows = [json.loads(line) for path in (s.train_path, s.validation_path, s.eval_path) for line in open(path)]
    assert rows and all(r[name] in {f"q{i}" for i in range(10)} for r in rows for name in TOKEN_FEATURES)
    s = convert_movielens(str(tmp_path / "src"), str(tmp_path / "plain"), eval_per_user=1, validation_per_user=1, item_cf_tokens=False)
    assert not any(name in json.loads(line) for line in open(s.train_path) for name in TOKEN_FEATURES)
