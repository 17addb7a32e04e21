"""Build the multi-embedding concatenation model (Keras 2 functional API) from the config.

Every feature arrives as int64 ids ``[batch, length]`` (0 = padding, see preprocessing.py) and
gets its own ``Embedding`` (or the one of the feature it shares with). Variants:

- ``pooled``: each feature is encoded on its own over its own mask (masked mean/sum/max, an
  LSTM/GRU, or attention pooling), the per-feature vectors are concatenated;
- ``concat_flatten``: the ``model.concat`` sequences' embeddings are concatenated on the last
  axis (one shared length; dims add up) and flattened;
- ``concat_rnn``: the same concatenation with a mask that keeps a timestep when *any* input has
  a real token there (tf_keras' Concatenate would AND them), then an LSTM/GRU.
The concat variants encode the remaining features as ``pooled`` does and join them after. The
head is Dense layers (ReLU, dropout, L2) and one sigmoid unit.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras

from embedconfig.config import FeatureConfig, PipelineConfig
from embedconfig.model_shapes import concat_features
from models.preprocessing import embedding_rows


def assert_keras_2() -> None:
    """Fail loudly unless the model is built with Keras 2 (tf_keras), as the project requires."""
    if not keras.__version__.startswith("2."):
        raise RuntimeError(f"embedpipe builds models with Keras 2 (tf_keras); got Keras {keras.__version__}")


class MaskedPooling(keras.layers.Layer):
    """Mean, sum or max over the time axis that ignores masked (padding) steps exactly."""

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.supports_masking = True

    def call(self, x: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        if mask is None:
            mask = tf.ones(tf.shape(x)[:2], dtype=tf.bool)
        weights = tf.cast(mask, x.dtype)[:, :, tf.newaxis]
        if self.mode == "max":
            very_negative = tf.fill(tf.shape(x), tf.constant(-1e9, x.dtype))
            pooled = tf.reduce_max(tf.where(weights > 0, x, very_negative), axis=1)
            return tf.where(tf.reduce_any(mask, axis=1, keepdims=True), pooled, tf.zeros_like(pooled))
        total = tf.reduce_sum(x * weights, axis=1)
        if self.mode == "sum":
            return total
        return total / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


class AttentionPooling(keras.layers.Layer):
    """Additive attention over the time axis with a learned query; padding gets zero weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = int(input_shape[-1])
        self.project = keras.layers.Dense(dim, activation="tanh")
        self.score = keras.layers.Dense(1, use_bias=False)
        super().build(input_shape)

    def call(self, x: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        logits = tf.squeeze(self.score(self.project(x)), axis=-1)
        if mask is not None:
            logits = tf.where(mask, logits, tf.fill(tf.shape(logits), tf.constant(-1e9, logits.dtype)))
        weights = tf.nn.softmax(logits, axis=-1)
        if mask is not None:  # all-padding rows: zero vector instead of a uniform average
            weights = weights * tf.cast(mask, weights.dtype)
        return tf.reduce_sum(x * weights[:, :, tf.newaxis], axis=1)

    def compute_mask(self, inputs: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        return None


class ConcatenateAnyMask(keras.layers.Concatenate):
    """Concatenate on the last axis; a timestep stays unmasked if any input is unmasked there."""

    def compute_mask(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> tf.Tensor | None:
        if mask is None or all(m is None for m in mask):
            return None
        masks = [tf.ones(tf.shape(x)[:2], dtype=tf.bool) if m is None else m for x, m in zip(inputs, mask, strict=True)]
        return tf.reduce_any(tf.stack(masks, axis=0), axis=0)


def _rnn(cell: str, units: int, name: str) -> keras.layers.Layer:
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    return layer(units, name=name)


def _encode(x: tf.Tensor, f: FeatureConfig, config: PipelineConfig) -> tf.Tensor:
    """One feature's embedded sequence -> one vector, over its own mask."""
    pooling = f.pooling or config.model.pooling
    if f.kind == "id" or pooling in ("mean", "sum", "max"):
        return MaskedPooling("mean" if f.kind == "id" else pooling, name=f"pool_{f.name}")(x)
    if pooling == "attention":
        return AttentionPooling(name=f"attend_{f.name}")(x)
    return _rnn(pooling, config.model.rnn_units, name=f"{pooling}_{f.name}")(x)


def build_model(config: PipelineConfig, vocabulary_sizes: Mapping[str, int]) -> keras.Model:
    """The compiled-free Keras model; ``vocabulary_sizes`` maps vocabulary owner -> V."""
    assert_keras_2()
    inputs: dict[str, tf.Tensor] = {}
    embedded: dict[str, tf.Tensor] = {}
    tables: dict[str, keras.layers.Embedding] = {}
    for f in config.features:
        owner = config.feature(f.vocabulary_owner)
        if owner.name not in tables:
            rows = embedding_rows(vocabulary_sizes[owner.name], owner.vocabulary.num_oov_buckets)
            tables[owner.name] = keras.layers.Embedding(
                rows, owner.embedding_dim, mask_zero=owner.mask_zero, name=f"embedding_{owner.name}"
            )
        inputs[f.name] = keras.Input(shape=(f.length,), dtype=tf.int64, name=f.name)
        embedded[f.name] = tables[owner.name](inputs[f.name])

    joined = concat_features(config)
    parts: list[tf.Tensor] = []
    if joined:
        stacked = ConcatenateAnyMask(axis=-1, name="concat_embeddings")([embedded[f.name] for f in joined])
        if config.model.type == "concat_flatten":
            parts.append(keras.layers.Flatten(name="flatten")(stacked))
        else:
            parts.append(_rnn(config.model.rnn_cell, config.model.rnn_units, name=f"{config.model.rnn_cell}_concat")(stacked))
    joined_names = {f.name for f in joined}
    parts += [_encode(embedded[f.name], f, config) for f in config.features if f.name not in joined_names]

    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1, name="concat_features")(parts)
    regularizer = keras.regularizers.l2(config.model.l2) if config.model.l2 else None
    for i, units in enumerate(config.model.hidden_units):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"hidden_{i}")(x)
        if config.model.dropout:
            x = keras.layers.Dropout(config.model.dropout, name=f"dropout_{i}")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(inputs=inputs, outputs=output, name=f"embedpipe_{config.model.type}")
