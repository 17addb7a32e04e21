"""The multi-embedding model: masks across concatenation, exact masked pooling, every variant builds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from embedconfig.config import parse_config
from models.model import AttentionPooling, ConcatenateAnyMask, MaskedPooling, build_model


def test_keras_is_keras_2() -> None:
    assert keras.__version__.startswith("2.")


def test_concat_mask_keeps_a_step_when_any_input_is_real() -> None:
    short = tf.constant([[5, 6, 7, 0, 0, 0]])
    long = tf.constant([[1, 2, 3, 4, 5, 6]])
    emb_a = keras.layers.Embedding(10, 2, mask_zero=True)
    emb_b = keras.layers.Embedding(10, 3, mask_zero=True)
    layer = ConcatenateAnyMask(axis=-1)
    a, b = emb_a(short), emb_b(long)
    mask = layer.compute_mask([a, b], [emb_a.compute_mask(short), emb_b.compute_mask(long)])
    np.testing.assert_array_equal(mask.numpy(), [[True] * 6])
    assert layer([a, b]).shape == (1, 6, 5), "embedding dims add up"
    stock = keras.layers.Concatenate(axis=-1).compute_mask([a, b], [emb_a.compute_mask(short), emb_b.compute_mask(long)])
    np.testing.assert_array_equal(stock.numpy(), [[True, True, True, False, False, False]])  # the trap avoided


def _config(raw_config: dict, model: dict, interests_len: int = 30) -> object:
    raw_config["features"][1]["max_length"] = interests_len
    raw_config["model"] = model
    return parse_config(raw_config)


SIZES = {"user": 50, "interests": 12, "history": 400, "target_categories": 20}


def test_concat_rnn_reads_late_tokens_of_the_longer_sequence(raw_config: dict) -> None:
    config = _config(raw_config, {"type": "concat_rnn", "concat": ["interests", "history"]})
    model = build_model(config, SIZES)
    batch = {
        "user": np.array([[1]]), "target": np.array([[1]]), "target_categories": np.array([[1, 0, 0, 0]]),
        "interests": np.array([[1, 2] + [0] * 28]),
        "history": np.array([list(range(1, 31))]),
    }
    changed = {**batch, "history": np.array([list(range(1, 30)) + [200]])}  # only the last token differs
    assert not np.allclose(model(batch).numpy(), model(changed).numpy()), "a token where the shorter input is padding was skipped"


@pytest.mark.parametrize("encoder", ["mean", "sum", "max", "attention", "lstm", "gru"])
def test_padding_does_not_change_a_pooled_vector(encoder: str) -> None:
    ids = keras.Input(shape=(None,), dtype=tf.int64)
    x = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    if encoder in ("mean", "sum", "max"):
        out = MaskedPooling(encoder)(x)
    elif encoder == "attention":
        out = AttentionPooling()(x)
    else:
        out = (keras.layers.LSTM if encoder == "lstm" else keras.layers.GRU)(3)(x)
    model = keras.Model(ids, out)
    unpadded = model(np.array([[3, 4, 7]])).numpy()
    padded = model(np.array([[3, 4, 7, 0, 0, 0, 0]])).numpy()
    np.testing.assert_allclose(padded, unpadded, rtol=1e-5, atol=1e-6)


def test_all_padding_pools_to_zero() -> None:
    x = keras.layers.Embedding(10, 4, mask_zero=True)
    ids = tf.constant([[0, 0, 0]])
    for mode in ("mean", "sum", "max"):
        np.testing.assert_array_equal(MaskedPooling(mode)(x(ids), mask=x.compute_mask(ids)).numpy(), np.zeros((1, 4)))


@pytest.mark.parametrize(
    "model",
    [
        {"type": "pooled"},
        {"type": "pooled", "pooling": "attention"},
        {"type": "pooled", "pooling": "gru"},
        {"type": "concat_flatten", "concat": ["interests", "history"]},
        {"type": "concat_rnn", "concat": ["interests", "history"], "rnn": {"cell": "gru", "units": 8}},
    ],
)
def test_every_variant_builds_with_per_feature_tables(raw_config: dict, model: dict) -> None:
    config = _config(raw_config, model)
    keras_model = build_model(config, SIZES)
    assert sorted(keras_model.input_names) == sorted(f.name for f in config.features)
    assert keras_model.output_shape == (None, 1)
    tables = {layer.name: layer for layer in keras_model.layers if isinstance(layer, keras.layers.Embedding)}
    # target shares history's table: one table for both, with rows V + oov + 1
    assert "embedding_target" not in tables
    assert tables["embedding_history"].input_dim == 400 + 4 + 1
    assert tables["embedding_user"].output_dim == 4
