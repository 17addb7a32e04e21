"""Raw rows of the built-in synthetic example, and the tf.Examples a client sends for them."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

ROWS = [
    {"user": "u1", "interests": ["topic_1", "topic_2"], "history": [5, 17, 29], "target": 13, "target_categories": ["cat_1"]},
    {"user": "nobody", "interests": [], "history": list(range(1000, 1100)), "target": 99999, "target_categories": ["x"]},
    {"user": "u2", "interests": ["topic_3"], "history": [], "target": 4, "target_categories": []},
]


def row_example(row: dict) -> tf.train.Example:
    """A row as a tf.Example typed as the synthetic schema types it."""
    feature = {}
    for key, value in row.items():
        values = value if isinstance(value, list) else [value]
        if key in ("history", "target"):
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


SERIALIZED = [row_example(r).SerializeToString() for r in ROWS]


def _padded(key: str, fill):
    width = max(len(r[key]) for r in ROWS)
    return [r[key] + [fill] * (width - len(r[key])) for r in ROWS]


# The rows as ``predict_raw``'s dense inputs, lists padded with the parse defaults ("" and -1);
# the int features as int64 arrays (a TensorProto carries them in tensor_content).
RAW_INPUTS = {
    "user": [r["user"] for r in ROWS],
    "target": np.array([r["target"] for r in ROWS], dtype=np.int64),
    "interests": _padded("interests", ""),
    "history": np.array(_padded("history", -1), dtype=np.int64),
    "target_categories": _padded("target_categories", ""),
}
