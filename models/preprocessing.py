"""Transform's ``preprocessing_fn``: vocabularies, id shifting, padding and the 0/1 label.

For every feature the output is a dense int64 ``[batch, length]`` tensor of ids where
- 0 is padding (never a token: vocabulary ids are shifted by one),
- 1..V are the vocabulary's tokens (most frequent first, after ``top_k`` / ``frequency_threshold``),
- V+1..V+num_oov_buckets are hashed unknown tokens (with 0 OOV buckets an unknown token is 0),
so an embedding table needs ``V + num_oov_buckets + 1`` rows. Sequences are truncated to
``max_length`` (keeping the last or first tokens) and 0-padded at the end (or, with
``padding: start``, at the start, so the last token always sits at the last position); an empty
sequence is all padding. Features that share an embedding share one vocabulary, built over all their values.
"""

from __future__ import annotations

import functools
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from embedconfig.config import (
    LABEL_KEY,
    LABEL_OPERATORS,
    FeatureConfig,
    LabelConfig,
    PreprocessingConfig,
    from_component_config,
)


def vocabulary_name(owner: str) -> str:
    """Name of the vocabulary file Transform writes for the feature ``owner``."""
    return f"vocab_{owner}"


def embedding_rows(vocabulary_size: int, num_oov_buckets: int) -> int:
    """Rows the embedding table needs: padding + vocabulary + OOV buckets."""
    return vocabulary_size + num_oov_buckets + 1


def _as_ragged(x: Any) -> tf.RaggedTensor:
    if isinstance(x, tf.RaggedTensor):
        return x
    if isinstance(x, tf.SparseTensor):
        return tf.RaggedTensor.from_sparse(x)
    return tf.RaggedTensor.from_tensor(x)


def _flat_values(x: Any) -> tf.Tensor:
    """Every value of a batch of (possibly variable-length) features, row by row."""
    if isinstance(x, tf.SparseTensor):
        return x.values
    if isinstance(x, tf.RaggedTensor):
        return x.flat_values
    return tf.reshape(x, [-1])


def _map_values(x: Any, fn: Any) -> Any:
    """The same batch with ``fn`` applied to its values (structure unchanged)."""
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, fn(x.values), x.dense_shape)
    if isinstance(x, tf.RaggedTensor):
        return x.with_flat_values(fn(x.flat_values))
    return fn(x)


def pad_or_truncate(ids: Any, length: int, truncate: str, padding: str = "end") -> tf.Tensor:
    """Dense ``[batch, length]``: keep the last (or first) ``length`` ids, pad with 0 at the end or start.

    ``ids`` is a SparseTensor (a VarLenFeature: values at positions 0..n-1 of each row), a 2-D
    RaggedTensor or a dense ``[batch, k]`` tensor (a FixedLenFeature). Built from plain index
    arithmetic and one scatter, not RaggedTensor slicing: the serving graph stays small (the
    ragged version cost about 400 graph nodes, with asserts, for five features).
    """
    if not isinstance(ids, (tf.SparseTensor, tf.RaggedTensor)):
        return _pad_or_truncate_dense(ids, length, truncate, padding)
    if isinstance(ids, tf.SparseTensor):
        values, rows, positions = ids.values, ids.indices[:, 0], ids.indices[:, 1]
        batch = ids.dense_shape[0]
        row_lengths = tf.math.unsorted_segment_sum(tf.ones_like(rows), rows, batch)
    else:
        values, rows, row_lengths = ids.flat_values, ids.value_rowids(), ids.row_lengths()
        batch = ids.nrows()
        positions = tf.range(tf.size(values, out_type=tf.int64)) - tf.gather(ids.row_starts(), rows)
    value_lengths = tf.gather(row_lengths, rows)
    kept = tf.minimum(value_lengths, length)  # how many ids the row of each value keeps
    first_kept = value_lengths - kept if truncate == "keep_last" else tf.zeros_like(kept)
    column = positions - first_kept + (length - kept if padding == "start" else 0)
    keep = (positions >= first_kept) & (positions < first_kept + kept)
    # dropped values land in an extra last column, sliced off below
    column = tf.where(keep, column, tf.cast(length, tf.int64))
    dense = tf.scatter_nd(tf.stack([rows, column], axis=1), values, tf.stack([tf.cast(batch, tf.int64), length + 1]))
    return dense[:, :length]


def _pad_or_truncate_dense(ids: tf.Tensor, length: int, truncate: str, padding: str) -> tf.Tensor:
    width = ids.shape[1]
    if ids.shape.rank != 2 or width is None:
        raise ValueError(f"expected a [batch, k] tensor with a known k, got shape {ids.shape}")
    kept = ids[:, -length:] if truncate == "keep_last" else ids[:, :length]
    missing = length - min(width, length)
    if not missing:
        return kept
    return tf.pad(kept, [[0, 0], [missing, 0] if padding == "start" else [0, missing]])


def _label(raw: Any, label: LabelConfig) -> tf.Tensor:
    symbol, operand = label.rule
    if isinstance(raw, (tf.SparseTensor, tf.RaggedTensor)):
        default = "" if label.dtype == "string" else 0
        raw = _as_ragged(raw).to_tensor(default_value=default, shape=[None, 1])
    compare = getattr(tf.math, LABEL_OPERATORS[symbol][1])
    return tf.cast(compare(raw, tf.constant(operand, dtype=raw.dtype)), tf.int64)


def _shifted_ids(values: tf.Tensor, vocabulary_file: Any, num_oov_buckets: int, name: str) -> tf.Tensor:
    """Vocabulary ids shifted by one (0 stays free for padding)."""
    return tft.apply_vocabulary(values, vocabulary_file, num_oov_buckets=num_oov_buckets, name=f"apply_vocabulary_{name}") + 1


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """TFT entry point; ``custom_config`` is ``component_config(config.preprocessing)``."""
    config = from_component_config(custom_config, PreprocessingConfig)
    outputs: dict[str, Any] = {}
    for owner in config.vocabulary_owners():
        users = config.vocabulary_users(owner)
        vocab = owner.vocabulary
        vocabulary_file = tft.vocabulary(
            tf.concat([_flat_values(inputs[f.name]) for f in users], axis=0),
            top_k=vocab.top_k,
            frequency_threshold=vocab.frequency_threshold if vocab.frequency_threshold > 1 else None,
            vocab_filename=vocabulary_name(owner.name),
            name=f"vocabulary_{owner.name}",
        )
        for f in users:
            outputs[f.name] = _ids(inputs[f.name], f, vocabulary_file)
    outputs[LABEL_KEY] = _label(inputs[config.label.name], config.label)
    return outputs


def _ids(raw: Any, f: FeatureConfig, vocabulary_file: Any) -> tf.Tensor:
    to_ids = functools.partial(_shifted_ids, vocabulary_file=vocabulary_file, num_oov_buckets=f.vocabulary.num_oov_buckets, name=f.name)
    # f.length is max_length for sequences, 1 for ids
    return pad_or_truncate(_map_values(raw, to_ids), f.length, f.truncate, f.padding)
