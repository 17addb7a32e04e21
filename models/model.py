"""Build the multi-embedding concatenation model (Keras 2 functional API) from the config.

Every feature arrives as int64 ids ``[batch, length]`` (0 = padding, see preprocessing.py) and
gets its own ``Embedding`` (or the one of the feature it shares with). Variants:

- ``pooled``: each feature is encoded on its own over its own mask (masked mean/sum/max, an
  LSTM/GRU, attention pooling with a learned query, or ``target_attention``: DIN's attention
  whose query is the embedding of an id feature, ``query: target``), the per-feature vectors
  are concatenated;
- ``concat_flatten``: the ``model.concat`` sequences' embeddings are concatenated on the last
  axis (one shared length; dims add up) and flattened;
- ``concat_rnn``: the same concatenation with a mask that keeps a timestep when *any* input has
  a real token there (tf_keras' Concatenate would AND them), then an LSTM/GRU.
The concat variants encode the remaining features as ``pooled`` does and join them after.
``model.attention`` adds DIN attention vectors to the concatenation, each scoring one sequence's
steps against an id's embedding and pooling another sequence aligned with it (the ratings given
to the history's movies, scored by how alike those movies are to the target).
``model.cross_layers: N`` stacks N DCN-v2 cross layers (Wang et al. 2021; ``tfrs.layers.dcn.Cross``,
low rank with ``model.cross_projection_dim``) on that concatenated vector. The head is Dense
layers (ReLU, dropout, L2) and one sigmoid unit.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf
import tf_keras as keras
from tensorflow_recommenders.layers.feature_interaction import Cross  # tfrs.layers.dcn.Cross

import patches
from embedconfig.config import FeatureConfig, ModelConfig, PipelineConfig
from embedconfig.model_shapes import concat_features, pooling_of, query_of
from models.preprocessing import embedding_rows

patches.exclude_tf_keras_from_autograph()  # else AutoGraph re-converts tf_keras on every first fit (patches/__init__.py)

# Our layers are registered under this package (tfrs registers Cross as "Custom>Cross"), so
# `import models.model` is all `keras.models.load_model` needs to rebuild an exported model from
# its layer configs (the Trainer saves without layer traces: models/trainer.py save_model).
KERAS_PACKAGE = "embedpipe"


def assert_keras_2() -> None:
    """Fail loudly unless the model is built with Keras 2 (tf_keras), as the project requires."""
    if not keras.__version__.startswith("2."):
        raise RuntimeError(f"embedpipe builds models with Keras 2 (tf_keras); got Keras {keras.__version__}")
    if not issubclass(Cross, keras.layers.Layer):  # tfrs subclasses tf.keras: Keras 3 unless TF_USE_LEGACY_KERAS=1
        raise RuntimeError("tensorflow_recommenders was imported with Keras 3 as tf.keras; set TF_USE_LEGACY_KERAS=1 first")


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
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


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
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


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class TargetAttentionPooling(keras.layers.Layer):
    """DIN's attention pooling (Zhou et al. 2018): each step of a sequence is scored against the
    target's embedding (the query) by an MLP over ``[key, query, key - query, key * query]`` and
    the steps are summed with those scores as weights; padding steps get weight 0.

    Inputs ``[keys [batch, steps, dim], query [batch, 1, query_dim]]``, and optionally ``values
    [batch, steps, values_dim]`` aligned with the keys step by step (``model.attention``): then the
    values are summed with the weights the keys got, under the keys' mask. ``project_query``: map the
    query to ``dim`` with a bias-free Dense first. build_model sets it when the query does not
    share the sequence's embedding table: DIN compares a target with history items of the same
    table (``key - query``, ``key * query`` are only meaningful in one space); for another table,
    or another embedding_dim, a learned linear map takes the query into the sequence's space, so
    any id feature can be the query without a config error about dims.
    """

    def __init__(self, hidden_units: tuple[int, ...] = (80, 40), project_query: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.hidden_units = tuple(hidden_units)
        self.project_query = project_query
        self.supports_masking = True

    def build(self, input_shape: list[tf.TensorShape]) -> None:
        dim = int(input_shape[0][-1])
        self.projection = keras.layers.Dense(dim, use_bias=False) if self.project_query else None
        # DIN's activation unit (its reference code: 80-40 sigmoid units, then one linear score)
        self.activation_unit = [keras.layers.Dense(units, activation="sigmoid") for units in self.hidden_units]
        self.score = keras.layers.Dense(1)
        super().build(input_shape)

    def call(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> tf.Tensor:
        keys, query, *rest = inputs
        values = rest[0] if rest else keys
        if self.projection is not None:
            query = self.projection(query)
        query = tf.broadcast_to(query, tf.shape(keys))
        h = tf.concat([keys, query, keys - query, keys * query], axis=-1)
        for layer in self.activation_unit:
            h = layer(h)
        # Why DIN's unnormalised weights (the raw scores), not a softmax: a softmax makes the weights
        # sum to 1, so the pooled vector says which items match the target but not how many, and
        # "how much of the history is like this item" is the signal (DIN's "intensity of interest").
        # Measured in memory (synthetic data, best held-out AUC, seeds 0/1): where the click depends
        # on the target matching the user's history (signal "preference", 20,000 rows, 4 epochs)
        # raw 0.722/0.724, softmax 0.697/0.704, sigmoid weights 0.695/0.705 (plain mean 0.698);
        # where the target is irrelevant (signal "late", 4,000 rows, 3 epochs) softmax does better,
        # 0.853/0.851 vs raw 0.804/0.796, but there the order matters and an RNN reaches 0.97.
        weights = tf.squeeze(self.score(h), axis=-1)
        if mask is not None and mask[0] is not None:  # padding: weight 0, so an all-padding row pools to 0
            weights = weights * tf.cast(mask[0], weights.dtype)
        return tf.reduce_sum(values * weights[:, :, tf.newaxis], axis=1)

    def compute_mask(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> None:
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "hidden_units": list(self.hidden_units), "project_query": self.project_query}


@keras.saving.register_keras_serializable(package=KERAS_PACKAGE)
class ConcatenateAnyMask(keras.layers.Concatenate):
    """Concatenate on the last axis; a timestep stays unmasked if any input is unmasked there."""

    def compute_mask(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> tf.Tensor | None:
        if mask is None or all(m is None for m in mask):
            return None
        masks = [tf.ones(tf.shape(x)[:2], dtype=tf.bool) if m is None else m for x, m in zip(inputs, mask, strict=True)]
        return tf.reduce_any(tf.stack(masks, axis=0), axis=0)


def cudnn_capable_layer(cell: str, units: int, name: str | None = None) -> keras.layers.Layer:
    """tf_keras' own ``LSTM`` / ``GRU`` layer (cuDNN on a GPU, both implementations traced)."""
    return (keras.layers.LSTM if cell == "lstm" else keras.layers.GRU)(units, name=name)


def recurrent_layer(cell: str, units: int, name: str | None = None) -> keras.layers.Layer:
    """An LSTM or GRU over a masked sequence, returning its last output.

    With a GPU, tf_keras' ``LSTM``/``GRU``, whose cuDNN kernel is much faster there. Without one,
    Keras' generic ``RNN`` over the same cell: the same computation (the cuDNN-capable layers run
    this very cell loop on a CPU), but those layers trace both implementations into every graph
    (grappler's backend selection), at fit, save and load, though only one can ever run here. The
    generic RNN made all three markedly faster, for a GRU and an LSTM alike (bench/recurrent_layer.py;
    bench/RESULTS.md, "What made the cold run faster (measured side by side)").
    """
    if tf.config.list_logical_devices("GPU"):
        return cudnn_capable_layer(cell, units, name)
    return keras.layers.RNN(keras.layers.LSTMCell(units) if cell == "lstm" else keras.layers.GRUCell(units), name=name)


def _encode(embedded: Mapping[str, tf.Tensor], f: FeatureConfig, config: PipelineConfig) -> tf.Tensor:
    """One feature's embedded sequence -> one vector, over its own mask."""
    x = embedded[f.name]
    pooling = pooling_of(f, config)
    if pooling in ("mean", "sum", "max"):
        return MaskedPooling(pooling, name=f"pool_{f.name}")(x)
    if pooling == "attention":
        return AttentionPooling(name=f"attend_{f.name}")(x)
    if pooling == "target_attention":
        query = query_of(f, config)
        project = query.vocabulary_owner != f.vocabulary_owner
        return TargetAttentionPooling(project_query=project, name=f"target_attend_{f.name}")([x, embedded[query.name]])
    return recurrent_layer(pooling, config.model.rnn.units, name=f"{pooling}_{f.name}")(x)


def build_model(config: PipelineConfig, vocabulary_sizes: Mapping[str, int]) -> keras.Model:
    """The compiled-free Keras model; ``vocabulary_sizes`` maps vocabulary owner -> V."""
    assert_keras_2()
    inputs: dict[str, tf.Tensor] = {}
    embedded: dict[str, tf.Tensor] = {}
    tables: dict[str, keras.layers.Embedding] = {}
    # L2 on the whole table (each table once, shared ones too). MovieLens-100K, issue 15, bench/auc_probe.py:
    # 3e-4 lets training go on past epoch 1 (lr 3e-3) instead of overfitting after it.
    embeddings_regularizer = keras.regularizers.l2(config.model.embedding_l2) if config.model.embedding_l2 else None
    for f in config.features:
        owner = config.feature(f.vocabulary_owner)
        if owner.name not in tables:
            rows = embedding_rows(vocabulary_sizes[owner.name], owner.vocabulary.num_oov_buckets)
            tables[owner.name] = keras.layers.Embedding(
                rows, owner.embedding_dim, mask_zero=owner.mask_zero, embeddings_regularizer=embeddings_regularizer,
                name=f"embedding_{owner.name}",
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
            parts.append(recurrent_layer(config.model.rnn.cell, config.model.rnn.units, name=f"{config.model.rnn.cell}_concat")(stacked))
    joined_names = {f.name for f in joined}
    parts += [_encode(embedded, f, config) for f in config.features if f.name not in joined_names]
    for i, a in enumerate(config.model.attention):
        project = config.feature(a.query).vocabulary_owner != config.feature(a.keys).vocabulary_owner
        attend = TargetAttentionPooling(project_query=project, name=f"attention_{i}_{a.values_feature}_by_{a.keys}")
        parts.append(attend([embedded[a.keys], embedded[a.query], embedded[a.values_feature]]))

    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(axis=-1, name="concat_features")(parts)
    return keras.Model(inputs=inputs, outputs=prediction_head(x, config.model), name=f"embedpipe_{config.model.type}")


def prediction_head(x: tf.Tensor, model: ModelConfig) -> tf.Tensor:
    """The probability from the concatenated feature vector: cross layers, ReLU Dense layers, sigmoid."""
    regularizer = keras.regularizers.l2(model.l2) if model.l2 else None
    # DCN-v2's stacked structure: x_{i+1} = x0 * (W x_i + b) + x_i, then the Dense layers. Why
    # tensorflow-recommenders' Cross (0.7.3, pure Python) and not our own: with TF_USE_LEGACY_KERAS=1
    # its tf.keras is tf_keras, so Cross subclasses tf_keras' Layer (checked in assert_keras_2), builds
    # in this functional model, trains, and survives SavedModel export, tf.saved_model.load and
    # load_model (tests/test_model.py; tests/test_model_variants_learn.py through the Trainer executor).
    x0 = x
    for i in range(model.cross_layers):
        x = Cross(projection_dim=model.cross_projection_dim, kernel_regularizer=regularizer, name=f"cross_{i}")(x0, x)
    for i, units in enumerate(model.hidden_units):
        x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"hidden_{i}")(x)
        if model.dropout:
            x = keras.layers.Dropout(model.dropout, name=f"dropout_{i}")(x)
    return keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
