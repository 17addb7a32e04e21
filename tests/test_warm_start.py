"""Warm start (models/warm_start.py): embedding rows move with their tokens, other layers are copied,
a changed shape trains from scratch and says why. The pipeline's daily runs
(tests/test_daily_runs.py) check the same through the real Trainer."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from embedconfig.config import parse_config
from models.model import build_model
from models.trainer import save_model, write_model_info
from models.warm_start import embedding_layer_name, moved_rows, read_vocabulary, warm_start

OWNERS = ("user", "interests", "history", "target_categories")


def _vocabularies(tokens_per_owner: int, shift: int = 0) -> dict[str, list[bytes]]:
    return {o: [f"{o}-{i}".encode() for i in range(shift, shift + tokens_per_owner)] for o in OWNERS}


def _write_vocabularies(directory: Path, vocabularies: dict[str, list[bytes]]) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for owner, tokens in vocabularies.items():
        (directory / owner).write_bytes(b"".join(t + b"\n" for t in tokens))
        files[owner] = str(directory / owner)
    return files


def _sizes(vocabularies: dict[str, list[bytes]]) -> dict[str, int]:
    return {o: len(t) for o, t in vocabularies.items()}


def _base_model(raw_config: dict, tmp_path: Path, vocabularies: dict[str, list[bytes]]) -> tuple[keras.Model, str]:
    """A model with distinct weights, saved as the Trainer saves one (with its config and vocabularies)."""
    config = parse_config(raw_config)
    keras.utils.set_random_seed(1)
    model = build_model(config, _sizes(vocabularies))
    export = tmp_path / "base"
    save_model(model, str(export), signatures=None)
    files = _write_vocabularies(tmp_path / "base_vocabularies", vocabularies)
    write_model_info(model, config, str(export), _sizes(vocabularies), vocabulary_files=files)
    return model, str(export)


def test_rows_move_with_their_tokens_as_keras_own_warm_start_moves_them() -> None:
    """Grown and reordered: shared tokens take their old rows at their new ids, new tokens keep their
    fresh rows, padding and the OOV buckets are copied; the token rows agree with tf_keras'
    warmstart_embedding_matrix given the same vocabularies."""
    rng = np.random.default_rng(0)
    base_tokens = [b"a", b"b", b"c", b"d"]
    tokens = [b"c", b"e", b"a", b"f", b"b", b"g"]  # d dropped; e, f, g new; order by today's frequency
    oov = 2
    base = rng.normal(size=(1 + len(base_tokens) + oov, 3))
    fresh = rng.normal(size=(1 + len(tokens) + oov, 3))
    rows, table = moved_rows(base, base_tokens, tokens, fresh, oov, oov)
    assert (table.kept, table.new, table.dropped, table.oov_rows_kept) == (3, 3, 1, True)
    np.testing.assert_array_equal(rows[0], base[0])
    for j, token in enumerate(tokens):
        expected = base[base_tokens.index(token) + 1] if token in base_tokens else fresh[j + 1]
        np.testing.assert_array_equal(rows[j + 1], expected, err_msg=token.decode())
    np.testing.assert_array_equal(rows[-oov:], base[-oov:])
    keras_rows = keras.utils.warmstart_embedding_matrix(
        base_vocabulary=np.array(base_tokens), new_vocabulary=np.array(tokens), base_embeddings=base[1:1 + len(base_tokens)],
        new_embeddings_initializer=keras.initializers.Constant(fresh[1:1 + len(tokens)]),
    )
    np.testing.assert_allclose(rows[1:1 + len(tokens)], keras_rows.numpy(), rtol=1e-6)


def test_the_same_vocabulary_keeps_the_whole_table_and_other_oov_buckets_start_fresh() -> None:
    rng = np.random.default_rng(1)
    tokens = [b"x", b"y", b"z"]
    base = rng.normal(size=(1 + 3 + 2, 4))
    np.testing.assert_array_equal(moved_rows(base, tokens, tokens, rng.normal(size=base.shape), 2, 2)[0], base)
    fresh = rng.normal(size=(1 + 3 + 4, 4))
    rows, table = moved_rows(base, tokens, tokens, fresh, 2, 4)  # a new hash: bucket k holds other tokens now
    assert not table.oov_rows_kept
    np.testing.assert_array_equal(rows[:4], base[:4])
    np.testing.assert_array_equal(rows[4:], fresh[4:])
    with pytest.raises(ValueError, match="do not fit"):
        moved_rows(base, tokens + [b"w"], tokens, fresh, 2, 4)


def test_a_model_with_the_same_vocabularies_starts_as_the_base_model(raw_config: dict, tmp_path: Path) -> None:
    vocabularies = _vocabularies(20)
    base, base_dir = _base_model(raw_config, tmp_path, vocabularies)
    keras.utils.set_random_seed(2)
    model = build_model(parse_config(raw_config), _sizes(vocabularies))
    start = warm_start(model, parse_config(raw_config), base_dir, _write_vocabularies(tmp_path / "today", vocabularies))
    assert start.warm and start.from_scratch == []
    assert {o: t.kept for o, t in start.tables.items()} == {o: 20 for o in OWNERS}
    assert "hidden_0" in start.layers_copied and "probability" in start.layers_copied
    for a, b in zip(base.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_grown_and_reordered_vocabulary_moves_rows_by_token_in_the_model(raw_config: dict, tmp_path: Path) -> None:
    base_vocabularies = _vocabularies(20)
    base, base_dir = _base_model(raw_config, tmp_path, base_vocabularies)
    vocabularies = {o: list(reversed(t[5:])) + [f"{o}-new-{i}".encode() for i in range(8)] for o, t in base_vocabularies.items()}
    keras.utils.set_random_seed(2)
    model = build_model(parse_config(raw_config), _sizes(vocabularies))
    fresh = {o: model.get_layer(embedding_layer_name(o)).get_weights()[0] for o in OWNERS}
    start = warm_start(model, parse_config(raw_config), base_dir, _write_vocabularies(tmp_path / "today", vocabularies))
    assert start.warm
    assert {o: (t.kept, t.new, t.dropped) for o, t in start.tables.items()} == {o: (15, 8, 5) for o in OWNERS}
    for owner in OWNERS:
        old = base.get_layer(embedding_layer_name(owner)).get_weights()[0]
        new = model.get_layer(embedding_layer_name(owner)).get_weights()[0]
        for j, token in enumerate(vocabularies[owner]):
            if token in base_vocabularies[owner]:
                np.testing.assert_array_equal(new[j + 1], old[base_vocabularies[owner].index(token) + 1])
            else:
                np.testing.assert_array_equal(new[j + 1], fresh[owner][j + 1])
    np.testing.assert_array_equal(model.get_layer("hidden_0").get_weights()[0], base.get_layer("hidden_0").get_weights()[0])
    assert read_vocabulary(f"{base_dir}/assets.extra/embedpipe/vocabularies/user") == base_vocabularies["user"]


@pytest.mark.parametrize(("change", "reason"), [
    (lambda raw: raw["features"][1].update(embedding_dim=16), "embedding_dim of 'interests' changed from 8 to 16"),
    (lambda raw: raw["features"].pop(4), "feature 'target_categories' was dropped"),
    (lambda raw: raw["model"].update(hidden_units=[16]), "layer 'hidden_0' has weights of shape [(36, 16), (16,)], "
                                                         "the base model's [(36, 32), (32,)]"),
])
def test_a_changed_shape_trains_from_scratch_and_says_why(raw_config: dict, tmp_path: Path, change, reason: str) -> None:
    vocabularies = _vocabularies(10)
    _, base_dir = _base_model(raw_config, tmp_path, vocabularies)
    changed = copy.deepcopy(raw_config)
    change(changed)
    config = parse_config(changed)
    model = build_model(config, _sizes(vocabularies))
    before = [w.copy() for w in model.get_weights()]
    start = warm_start(model, config, base_dir, _write_vocabularies(tmp_path / "today", vocabularies))
    assert not start.warm and start.from_scratch[0] == reason
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_base_model_from_before_warm_start_trains_from_scratch_naming_what_is_missing(raw_config: dict, tmp_path: Path) -> None:
    vocabularies = _vocabularies(10)
    _, base_dir = _base_model(raw_config, tmp_path, vocabularies)
    for path in (Path(base_dir) / "assets.extra" / "embedpipe" / "vocabularies").iterdir():
        path.unlink()
    model = build_model(parse_config(raw_config), _sizes(vocabularies))
    start = warm_start(model, parse_config(raw_config), base_dir, _write_vocabularies(tmp_path / "today", vocabularies))
    assert not start.warm
    assert start.from_scratch[0].startswith("the base model has no vocabulary of 'user' under assets.extra/embedpipe/vocabularies/")
