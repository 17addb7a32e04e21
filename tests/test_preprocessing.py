"""Transform's preprocessing_fn through a real tf.Transform Beam run: vocabularies, OOV, padding."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from embedconfig.config import component_config, parse_config
from models.preprocessing import pad_or_truncate, preprocessing_fn

RAW_SPEC = {
    "tags": tf.io.VarLenFeature(tf.string),
    "items": tf.io.VarLenFeature(tf.int64),
    "item": tf.io.FixedLenFeature([1], tf.int64),
    "score": tf.io.FixedLenFeature([1], tf.float32),
}
# tags: a x3, b x2, c x1  -> vocabulary [a, b, c] -> ids a=1 b=2 c=3, OOV = 4 (1 bucket)
# items + item share one vocabulary: 10 x5, 20 x2, 30 x1 (top_k 2 keeps 10, 20) -> 10=1 20=2, OOV 3..4
TRAIN = [
    {"tags": ["a", "b", "a"], "items": [10, 20, 10, 30], "item": [10], "score": [5.0]},
    {"tags": ["a", "b", "c"], "items": [20], "item": [10], "score": [2.0]},
    {"tags": [], "items": [], "item": [10], "score": [4.0]},
]


def _config() -> dict:
    raw = {
        "pipeline": {"name": "t"},
        "data": {"format": "jsonl", "path": "x"},
        "schema": "s.pbtxt",
        "features": [
            {"name": "tags", "kind": "sequence", "dtype": "string", "max_length": 4, "truncate": "keep_first", "embedding_dim": 2},
            {"name": "items", "kind": "sequence", "dtype": "int", "max_length": 3, "truncate": "keep_last", "embedding_dim": 2,
             "vocabulary": {"top_k": 2, "num_oov_buckets": 2}},
            {"name": "item", "kind": "id", "dtype": "int", "embedding_dim": 2, "share_embedding_with": "items"},
        ],
        "label": {"name": "score", "dtype": "float", "positive_if": ">= 4"},
    }
    return component_config(parse_config(raw).preprocessing)


@pytest.fixture(scope="module")
def transformed():
    """(transformed TRAIN rows, transformed TEST rows, vocabulary of tags) from one real TFT run."""
    test = [
        {"tags": ["zzz", "a", "b", "c", "a", "b"], "items": [10, 20, 30, 99, 10], "item": [777], "score": [3.0]},
        {"tags": [], "items": [], "item": [20], "score": [4.0]},
    ]
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(RAW_SPEC))
    config = _config()
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp, force_tf_compat_v1=False):
        (train_out, _), transform_fn = (TRAIN, metadata) | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: preprocessing_fn(inputs, config)
        )
        test_out, _ = ((test, metadata), transform_fn) | tft_beam.TransformDataset()
    return train_out, test_out


def test_ids_start_at_one_by_frequency_and_pad_with_zero(transformed) -> None:
    train, _ = transformed
    np.testing.assert_array_equal(train[0]["tags"], [1, 2, 1, 0])
    np.testing.assert_array_equal(train[1]["tags"], [1, 2, 3, 0])


def test_empty_sequence_is_all_padding(transformed) -> None:
    train, test = transformed
    np.testing.assert_array_equal(train[2]["tags"], [0, 0, 0, 0])
    np.testing.assert_array_equal(test[1]["items"], [0, 0, 0])


def test_truncation_keeps_the_configured_side(transformed) -> None:
    _, test = transformed
    # tags keep_first 4 of [zzz, a, b, c, a, b]: zzz is OOV (4)
    np.testing.assert_array_equal(test[0]["tags"], [4, 1, 2, 3])
    # items keep_last 3 of [10, 20, 30, 99, 10]: 30 and 99 are beyond top_k -> OOV buckets 3..4
    last = test[0]["items"]
    assert last[2] == 1 and all(3 <= i <= 4 for i in last[:2])


def test_shared_vocabulary_gives_the_same_id_to_the_same_token(transformed) -> None:
    train, test = transformed
    # items keep_last 3 of [10, 20, 10, 30] -> [20, 10, 30]; 10 is the most frequent over both features
    np.testing.assert_array_equal(train[0]["items"], [2, 1, 3])
    assert train[0]["item"][0] == 1
    assert test[1]["item"][0] == 2  # 20
    assert 3 <= test[0]["item"][0] <= 4  # 777 unseen: OOV bucket, not padding


def test_label_rule(transformed) -> None:
    train, test = transformed
    assert [int(r["label"][0]) for r in train] == [1, 0, 1]
    assert [int(r["label"][0]) for r in test] == [0, 1]


def test_padding_at_the_start_right_aligns_the_kept_tokens() -> None:
    ids = tf.ragged.constant([[1, 2, 3, 4, 5], [7], []], dtype=tf.int64)
    np.testing.assert_array_equal(pad_or_truncate(ids, 3, "keep_last", "start"), [[3, 4, 5], [0, 0, 7], [0, 0, 0]])
    np.testing.assert_array_equal(pad_or_truncate(ids, 3, "keep_first", "start"), [[1, 2, 3], [0, 0, 7], [0, 0, 0]])
    np.testing.assert_array_equal(pad_or_truncate(ids, 3, "keep_last", "end"), [[3, 4, 5], [7, 0, 0], [0, 0, 0]])


@pytest.mark.parametrize("truncate", ["keep_last", "keep_first"])
@pytest.mark.parametrize("padding", ["end", "start"])
def test_sparse_ragged_and_dense_inputs_pad_alike(truncate: str, padding: str) -> None:
    rows = [[1, 2, 3, 4, 5], [7], [], [8, 9, 10]]
    ragged = tf.ragged.constant(rows, dtype=tf.int64)
    expected = pad_or_truncate(ragged, 3, truncate, padding).numpy()
    np.testing.assert_array_equal(pad_or_truncate(ragged.to_sparse(), 3, truncate, padding), expected)
    for width, length in ((1, 1), (1, 3), (4, 2)):
        dense = tf.constant([[10 * r + c + 1 for c in range(width)] for r in range(3)], dtype=tf.int64)
        via_ragged = pad_or_truncate(tf.RaggedTensor.from_tensor(dense), length, truncate, padding)
        np.testing.assert_array_equal(pad_or_truncate(dense, length, truncate, padding), via_ragged)
