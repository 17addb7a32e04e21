"""The multi-embedding model: masks across concatenation, exact masked pooling, target attention,
cross layers, every variant builds and survives SavedModel export."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from embedconfig.config import parse_config
from embedconfig.model_shapes import feature_vector_width
from models.model import (
    AttentionPooling,
    ConcatenateAnyMask,
    Cross,
    MaskedPooling,
    TargetAttentionPooling,
    build_model,
    cudnn_capable_layer,
    recurrent_layer,
)


def test_keras_is_keras_2() -> None:
    assert keras.__version__.startswith("2.")


def test_autograph_leaves_tf_keras_alone_and_still_converts_our_layers() -> None:
    """patches.exclude_tf_keras_from_autograph: tf_keras' training loop is not re-converted in every process
    (that conversion was most of a small model's first fit:
    bench/RESULTS.md, "What made the cold run faster (measured side by side)");
    a layer of ours with Python control flow still is."""
    from tensorflow.python.autograph.impl import conversion

    from patches import exclude_tf_keras_from_autograph

    exclude_tf_keras_from_autograph()  # idempotent: the rule is there once
    assert conversion.is_allowlisted(keras.Model.train_step) and conversion.is_allowlisted(keras.metrics.AUC.update_state)
    assert not conversion.is_allowlisted(TargetAttentionPooling.call)
    from tensorflow.python.autograph.core import config as autograph_config

    assert sum(isinstance(r, autograph_config.DoNotConvert) and r.matches("tf_keras") for r in autograph_config.CONVERSION_RULES) == 1


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
        out = recurrent_layer(encoder, 3)(x)
    model = keras.Model(ids, out)
    unpadded = model(np.array([[3, 4, 7]])).numpy()
    padded = model(np.array([[3, 4, 7, 0, 0, 0, 0]])).numpy()
    np.testing.assert_allclose(padded, unpadded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_recurrent_layer_computes_what_tf_keras_lstm_and_gru_compute(cell: str) -> None:
    """Without a GPU the model's recurrent layer is Keras' generic RNN over the cell
    (models/model.py recurrent_layer); with the same weights it answers like tf_keras' LSTM/GRU,
    padding included."""
    ids = keras.Input(shape=(None,), dtype=tf.int64)
    x = keras.layers.Embedding(10, 4, mask_zero=True)(ids)
    ours = keras.Model(ids, recurrent_layer(cell, 5)(x))
    reference = keras.Model(ids, cudnn_capable_layer(cell, 5)(x))
    reference.set_weights(ours.get_weights())
    batch = np.array([[3, 4, 7, 0, 0], [1, 0, 0, 0, 0], [9, 8, 7, 6, 5]])
    np.testing.assert_allclose(ours(batch).numpy(), reference(batch).numpy(), rtol=1e-5, atol=1e-6)
    if not tf.config.list_logical_devices("GPU"):
        assert type(ours.layers[-1]) is keras.layers.RNN


def test_all_padding_pools_to_zero() -> None:
    x = keras.layers.Embedding(10, 4, mask_zero=True)
    ids = tf.constant([[0, 0, 0]])
    for mode in ("mean", "sum", "max"):
        np.testing.assert_array_equal(MaskedPooling(mode)(x(ids), mask=x.compute_mask(ids)).numpy(), np.zeros((1, 4)))


def _target_attention(keys_dim: int = 4, query_dim: int = 4) -> keras.Model:
    """ids [batch, steps] and one target id -> the target-attention-pooled vector."""
    ids, target = keras.Input(shape=(None,), dtype=tf.int64), keras.Input(shape=(1,), dtype=tf.int64)
    keys = keras.layers.Embedding(10, keys_dim, mask_zero=True)(ids)
    query = keras.layers.Embedding(10, query_dim, mask_zero=True)(target)
    return keras.Model([ids, target], TargetAttentionPooling(project_query=keys_dim != query_dim)([keys, query]))


@pytest.mark.parametrize("query_dim", [4, 6], ids=["same_dim", "projected"])
def test_padding_does_not_change_a_target_attention_vector(query_dim: int) -> None:
    model = _target_attention(query_dim=query_dim)
    target = np.array([[5]])
    unpadded = model([np.array([[3, 4, 7]]), target]).numpy()
    padded = model([np.array([[3, 4, 7, 0, 0, 0, 0]]), target]).numpy()
    np.testing.assert_allclose(padded, unpadded, rtol=1e-5, atol=1e-6)
    assert unpadded.shape == (1, 4), "the pooled vector has the sequence's dim, not the query's"
    assert not np.allclose(model([np.array([[3, 4, 7]]), np.array([[6]])]).numpy(), unpadded), "the query is read"


def test_all_padding_target_attention_pools_to_zero() -> None:
    out = _target_attention()([np.array([[0, 0, 0], [3, 0, 0]]), np.array([[5], [5]])]).numpy()
    np.testing.assert_array_equal(out[0], np.zeros(4))
    assert np.any(out[1] != 0)


def test_target_attention_layer_config_round_trips() -> None:
    layer = TargetAttentionPooling(hidden_units=(8,), project_query=True, name="t")
    again = TargetAttentionPooling.from_config(layer.get_config())
    assert (again.hidden_units, again.project_query, again.name) == ((8,), True, "t")


def _valued_attention() -> keras.Model:
    """TargetAttentionPooling over keys ``ids`` (dim 4) with aligned values ``ratings`` (dim 3)."""
    ids, ratings, target = (keras.Input(shape=(None,), dtype=tf.int64) for _ in range(3))
    table = keras.layers.Embedding(10, 4, mask_zero=True)
    values = keras.layers.Embedding(10, 3, mask_zero=True)(ratings)
    return keras.Model([ids, ratings, target], TargetAttentionPooling()([table(ids), table(target), values]))


def test_attention_values_are_pooled_with_the_weights_their_keys_get() -> None:
    model = _valued_attention()
    ids, ratings, target = np.array([[3, 4, 7]]), np.array([[1, 2, 1]]), np.array([[5]])
    out = model([ids, ratings, target]).numpy()
    assert out.shape == (1, 3), "the pooled vector has the values' dim"
    padded = model([np.array([[3, 4, 7, 0, 0]]), np.array([[1, 2, 1, 6, 9]]), target]).numpy()
    np.testing.assert_allclose(padded, out, rtol=1e-5, atol=1e-6)  # values under padded keys count for nothing
    assert not np.allclose(model([ids, np.array([[1, 2, 2]]), target]).numpy(), out), "the values are read"
    assert not np.allclose(model([ids, ratings, np.array([[6]])]).numpy(), out), "the query is read"


def test_model_attention_adds_one_vector_per_entry_and_survives_export(raw_config: dict, tmp_path) -> None:
    """history's steps scored against target pool interests (aligned: both 30 steps, kept last, padded at the end)."""
    config = _config(raw_config, {"type": "pooled", "attention": [{"query": "target", "keys": "history", "values": "interests"},
                                                                   {"query": "user", "keys": "history"}]})
    keras_model = build_model(config, SIZES)
    first, second = keras_model.get_layer("attention_0_interests_by_history"), keras_model.get_layer("attention_1_history_by_history")
    assert not first.project_query and second.project_query, "target shares history's table; user does not"
    assert keras_model.get_layer("concat_features").output_shape == (None, feature_vector_width(config))
    batch = {"user": np.array([[1], [2]]), "interests": np.array([[1, 2, 3] + [0] * 27] * 2), "target": np.array([[9], [3]]),
             "target_categories": np.array([[1, 0, 0, 0]] * 2), "history": np.array([[4, 9, 17] + [0] * 27, [0] * 30])}
    keras_model.save(str(tmp_path / "model"), save_format="tf")
    served = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(next(iter(served.values())).numpy(), keras_model(batch).numpy(), rtol=1e-5, atol=1e-6)


def _target_attention_config(raw_config: dict, model: dict | None = None) -> object:
    raw_config["features"][2].update(pooling="target_attention", query="target")  # history, queried by target
    return _config(raw_config, {"type": "pooled", **(model or {})})


def test_target_attention_prediction_ignores_padding_and_where_it_is(raw_config: dict) -> None:
    """history's padding (and whether it comes first or last) leaves the prediction unchanged."""
    model = build_model(_target_attention_config(raw_config), SIZES)
    batch = {"user": np.array([[1]]), "interests": np.array([[1, 2] + [0] * 28]), "target": np.array([[9]]),
             "target_categories": np.array([[1, 0, 0, 0]]), "history": np.array([[4, 9, 17] + [0] * 27])}
    start_padded = {**batch, "history": np.array([[0] * 27 + [4, 9, 17]])}
    np.testing.assert_allclose(model(start_padded).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)
    other_target = {**batch, "target": np.array([[17]])}
    assert not np.allclose(model(other_target).numpy(), model(batch).numpy())


def test_target_attention_projects_a_query_only_from_another_table(raw_config: dict) -> None:
    raw_config["features"][2]["pooling"] = "target_attention"  # history: same table as target
    config = _config(raw_config, {"type": "pooled", "pooling": "target_attention", "query": "target"})
    keras_model = build_model(config, SIZES)
    assert not keras_model.get_layer("target_attend_history").project_query
    assert keras_model.get_layer("target_attend_interests").project_query  # interests: its own table


def test_cross_layers_are_stacked_on_the_concatenated_vector(raw_config: dict) -> None:
    config = _config(raw_config, {"type": "pooled", "cross_layers": 3, "cross_projection_dim": 5})
    keras_model = build_model(config, SIZES)
    crosses = [layer for layer in keras_model.layers if isinstance(layer, Cross)]
    assert [layer.name for layer in crosses] == ["cross_0", "cross_1", "cross_2"]
    x0 = keras_model.get_layer("concat_features").output
    calls = [layer._inbound_nodes[0].call_args for layer in crosses]  # (x0, x_i): Cross(...)(x0, x)
    assert all(args[0] is x0 for args in calls), "every cross layer multiplies by x0 (DCN-v2)"
    chain = [x0, crosses[0].output, crosses[1].output]
    assert all(args[1] is x for args, x in zip(calls, chain, strict=True)), "x_{i+1} = cross_i(x0, x_i)"
    assert crosses[0]._dense_u.kernel.shape == (feature_vector_width(config), 5), "low rank: W = U V"
    assert keras_model.get_layer("hidden_0").input is crosses[-1].output


def test_embedding_l2_penalises_each_table_once_and_nothing_else(raw_config: dict) -> None:
    """``model.embedding_l2`` adds ``l2 * sum(w**2)`` per table (a shared table once); ``model.l2`` stays on Dense."""
    keras_model = build_model(_config(raw_config, {"type": "pooled", "embedding_l2": 3e-4}), SIZES)
    tables = [layer for layer in keras_model.layers if isinstance(layer, keras.layers.Embedding)]
    assert len(tables) == 4, "target shares history's table"
    expected = sum(3e-4 * float(tf.reduce_sum(tf.square(t.embeddings))) for t in tables)
    assert len(keras_model.losses) == len(tables)
    np.testing.assert_allclose(float(tf.add_n(keras_model.losses)), expected, rtol=1e-5)
    assert build_model(_config(raw_config, {"type": "pooled"}), SIZES).losses == []


# Between them, every layer class of ours (and tfrs' Cross) in an exported model.
EXPORTED_MODELS = {
    "target_attention_cross": lambda raw: _target_attention_config(raw, {"cross_layers": 2}),  # TargetAttentionPooling, MaskedPooling, Cross
    "attention_pooling": lambda raw: _config(raw, {"type": "pooled", "pooling": "attention"}),  # AttentionPooling
    "concat_rnn_gru": lambda raw: _config(raw, {"type": "concat_rnn", "concat": ["interests", "history"],
                                                "rnn": {"cell": "gru", "units": 8}}),  # ConcatenateAnyMask, RNN
}


@pytest.mark.parametrize("make_config", EXPORTED_MODELS.values(), ids=EXPORTED_MODELS.keys())
def test_the_trainers_export_serves_without_the_classes_and_reloads_in_keras_with_them(
    raw_config: dict, make_config, tmp_path
) -> None:
    """What the Trainer exports (models.trainer.save_model, without layer traces): the signature
    (what TF Serving and `embedpipe serve` call, without our classes: tests/test_serving.py) scores
    like the Keras model, and ``keras.models.load_model`` rebuilds the model from its layer configs
    once ``models.model`` is imported (it registers our layers)."""
    from models.trainer import save_model

    keras_model = build_model(make_config(raw_config), SIZES)
    batch = {"user": np.array([[1], [2]]), "interests": np.array([[1, 2] + [0] * 28] * 2), "target": np.array([[9], [3]]),
             "target_categories": np.array([[1, 0, 0, 0]] * 2), "history": np.array([[4, 9, 17] + [0] * 27, [0] * 30])}
    serve = tf.function(keras_model.call, input_signature=[{x.name: tf.TensorSpec(x.shape, x.dtype, x.name) for x in keras_model.inputs}])
    save_model(keras_model, str(tmp_path / "model"), {"serving_default": serve})
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(next(iter(served.values())).numpy(), keras_model(batch).numpy(), rtol=1e-5, atol=1e-6)
    reloaded = keras.models.load_model(str(tmp_path / "model"))
    assert [type(layer) for layer in reloaded.layers] == [type(layer) for layer in keras_model.layers], "rebuilt, not revived"
    np.testing.assert_allclose(reloaded(batch).numpy(), keras_model(batch).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "model",
    [
        {"type": "pooled"},
        {"type": "pooled", "pooling": "attention"},
        {"type": "pooled", "pooling": "gru"},
        {"type": "pooled", "pooling": "target_attention", "query": "target"},
        {"type": "pooled", "cross_layers": 2},
        {"type": "pooled", "pooling": "target_attention", "query": "target", "cross_layers": 1, "cross_projection_dim": 8},
        {"type": "concat_flatten", "concat": ["interests", "history"]},
        {"type": "concat_rnn", "concat": ["interests", "history"], "rnn": {"cell": "gru", "units": 8}},
        {"type": "concat_rnn", "concat": ["interests", "history"], "cross_layers": 2, "cross_projection_dim": 4},
    ],
)
def test_every_variant_builds_with_per_feature_tables(raw_config: dict, model: dict) -> None:
    config = _config(raw_config, model)
    keras_model = build_model(config, SIZES)
    assert sorted(keras_model.input_names) == sorted(f.name for f in config.features)
    assert keras_model.output_shape == (None, 1)
    assert keras_model.get_layer("concat_features").output_shape == (None, feature_vector_width(config))
    tables = {layer.name: layer for layer in keras_model.layers if isinstance(layer, keras.layers.Embedding)}
    # target shares history's table: one table for both, with rows V + oov + 1
    assert "embedding_target" not in tables
    assert tables["embedding_history"].input_dim == 400 + 4 + 1
    assert tables["embedding_user"].output_dim == 4
