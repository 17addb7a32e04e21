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

from typing import Any, Mapping

import tensorflow as tf
import tensorflow_transform as tft

from pipeline.config import LABEL_KEY, parse_label_rule

CUSTOM_CONFIG_KEY = "embedpipe"  # where the config dict sits in Transform/Trainer custom_config


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


def pad_or_truncate(ids: tf.RaggedTensor, length: int, truncate: str, padding: str = "end") -> tf.Tensor:
    """Dense ``[batch, length]``: keep the last (or first) ``length`` ids, pad with 0 at the end or start."""
    kept = ids[:, -length:] if truncate == "keep_last" else ids[:, :length]
    dense = kept.to_tensor(default_value=0, shape=[None, length])
    if padding == "end":
        return dense
    # shift each row right by its number of padding slots
    source = tf.range(length, dtype=tf.int64)[tf.newaxis, :] - (length - kept.row_lengths())[:, tf.newaxis]
    shifted = tf.gather(dense, tf.maximum(source, 0), batch_dims=1)
    return tf.where(source >= 0, shifted, tf.zeros_like(shifted))


def _label(raw: Any, label: Mapping[str, Any]) -> tf.Tensor:
    symbol, operand = parse_label_rule(label["positive_if"], label["dtype"], "label.positive_if")
    if isinstance(raw, (tf.SparseTensor, tf.RaggedTensor)):
        default = "" if label["dtype"] == "string" else 0
        raw = _as_ragged(raw).to_tensor(default_value=default, shape=[None, 1])
    ops = {">=": tf.greater_equal, "<=": tf.less_equal, "==": tf.equal, "!=": tf.not_equal, ">": tf.greater, "<": tf.less}
    return tf.cast(ops[symbol](raw, tf.constant(operand, dtype=raw.dtype)), tf.int64)


def preprocessing_fn(inputs: dict[str, Any], custom_config: dict[str, Any]) -> dict[str, Any]:
    """TFT entry point; ``custom_config[CUSTOM_CONFIG_KEY]`` is ``PipelineConfig.to_dict()``."""
    config = custom_config[CUSTOM_CONFIG_KEY]
    features = config["features"]
    outputs: dict[str, Any] = {}
    for owner in (f for f in features if f["share_embedding_with"] is None):
        members = [f for f in features if (f["share_embedding_with"] or f["name"]) == owner["name"]]
        ragged = {f["name"]: _as_ragged(inputs[f["name"]]) for f in members}
        vocab = owner["vocabulary"]
        vocabulary_file = tft.vocabulary(
            tf.concat([ragged[f["name"]].flat_values for f in members], axis=0),
            top_k=vocab["top_k"],
            frequency_threshold=vocab["frequency_threshold"] if vocab["frequency_threshold"] > 1 else None,
            vocab_filename=vocabulary_name(owner["name"]),
            name=f"vocabulary_{owner['name']}",
        )
        for f in members:
            rt = ragged[f["name"]]
            ids = tft.apply_vocabulary(
                rt.flat_values,
                vocabulary_file,
                num_oov_buckets=vocab["num_oov_buckets"],
                name=f"apply_vocabulary_{f['name']}",
            )
            # the validated config holds max_length 1 for id features
            outputs[f["name"]] = pad_or_truncate(
                rt.with_flat_values(ids + 1), f["max_length"], f["truncate"], f.get("padding", "end")
            )
    outputs[LABEL_KEY] = _label(inputs[config["label"]["name"]], config["label"])
    return outputs
