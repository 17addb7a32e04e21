"""Plain-Keras, in-memory reference runs on JSONL examples (no TFX, no tf.data from files).

``encode`` turns JSONL rows into the same id layout Transform writes (vocabulary by frequency,
ids shifted by one so 0 is padding, OOV buckets after the vocabulary, keep-last truncation,
0-padding at the end), as numpy arrays held in memory. ``fit_and_score`` trains a Keras model on
them with ``model.fit`` and reports eval AUC, train seconds and train examples/s. The references
the model-variants bench reruns beside the pipeline are defined here too.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tf_keras as keras

import pipeline  # noqa: F401 -- TF_USE_LEGACY_KERAS before TensorFlow
from embedconfig.config import FeatureConfig, PipelineConfig, label_is_positive


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """All rows of a JSONL file."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _values(row: dict[str, Any], name: str) -> list[Any]:
    value = row.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Encoded:
    """Train/eval arrays per feature, the 0/1 labels and the vocabulary size per owner."""

    train: dict[str, np.ndarray]
    eval: dict[str, np.ndarray]
    train_labels: np.ndarray
    eval_labels: np.ndarray
    vocabulary_sizes: dict[str, int]


def encode(config: PipelineConfig, train_rows: list[dict], eval_rows: list[dict]) -> Encoded:
    """Encode rows like models/preprocessing.py does, with vocabularies from ``train_rows``."""
    arrays: dict[str, dict[str, np.ndarray]] = {"train": {}, "eval": {}}
    sizes: dict[str, int] = {}
    for owner in (f for f in config.features if f.share_embedding_with is None):
        members = [f for f in config.features if f.vocabulary_owner == owner.name]
        counts = Counter(str(v) for f in members for row in train_rows for v in _values(row, f.name))
        ranked = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= owner.vocabulary.frequency_threshold]
        if owner.vocabulary.top_k:
            ranked = ranked[: owner.vocabulary.top_k]
        sizes[owner.name] = len(ranked)
        index = {t: i + 1 for i, t in enumerate(ranked)}
        oov = owner.vocabulary.num_oov_buckets
        for f in members:
            for split, rows in (("train", train_rows), ("eval", eval_rows)):
                arrays[split][f.name] = _pad([_ids(_values(r, f.name), index, oov, len(ranked)) for r in rows], f)
    labels = {
        split: np.array([int(label_is_positive(r[config.label.name], config.label)) for r in rows], dtype=np.float32)
        for split, rows in (("train", train_rows), ("eval", eval_rows))
    }
    return Encoded(arrays["train"], arrays["eval"], labels["train"], labels["eval"], sizes)


def _ids(values: list[Any], index: dict[str, int], oov: int, size: int) -> list[int]:
    out = []
    for v in values:
        token = str(v)
        if token in index:
            out.append(index[token])
        elif oov:
            out.append(size + 1 + hash(token) % oov)
        else:
            out.append(0)
    return out


def _pad(sequences: list[list[int]], f: FeatureConfig) -> np.ndarray:
    out = np.zeros((len(sequences), f.length), dtype=np.int64)
    for i, ids in enumerate(sequences):
        kept = ids[-f.length :] if f.truncate == "keep_last" else ids[: f.length]
        if kept and f.padding == "start":
            out[i, f.length - len(kept) :] = kept
        else:
            out[i, : len(kept)] = kept
    return out


@dataclass
class ReferenceResult:
    """One reference run."""

    name: str
    auc: float
    train_seconds: float | None
    examples_per_second: float | None
    epochs: int


def fit_and_score(
    name: str,
    model: keras.Model,
    data: Encoded,
    inputs: list[str],
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
) -> ReferenceResult:
    """Adam + cross-entropy on in-memory arrays; eval AUC after ``epochs`` passes."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    x_train = {k: data.train[k] for k in inputs}
    x_eval = {k: data.eval[k] for k in inputs}
    start = time.perf_counter()
    model.fit(x_train, data.train_labels, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - start
    scores = model.predict(x_eval, batch_size=4096, verbose=0).reshape(-1)
    return ReferenceResult(name, auc(data.eval_labels, scores), seconds, len(data.train_labels) * epochs / seconds, epochs)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (exact, ties averaged)."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    positives = labels > 0.5
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def item_mean_baseline(train_rows: list[dict], eval_rows: list[dict], config: PipelineConfig, item: str, smoothing: float = 10.0) -> ReferenceResult:
    """Score = the target item's smoothed positive rate on train (no model)."""
    labels_train = [int(label_is_positive(r[config.label.name], config.label)) for r in train_rows]
    prior = float(np.mean(labels_train))
    pos: Counter = Counter()
    seen: Counter = Counter()
    for r, y in zip(train_rows, labels_train, strict=True):
        pos[r[item]] += y
        seen[r[item]] += 1
    scores = np.array([(pos[r[item]] + smoothing * prior) / (seen[r[item]] + smoothing) for r in eval_rows])
    labels = np.array([int(label_is_positive(r[config.label.name], config.label)) for r in eval_rows])
    return ReferenceResult("item mean rating (smoothed)", auc(labels, scores), None, None, 0)


def _embed(name: str, data: Encoded, config: PipelineConfig, dim: int, mask_zero: bool, table: dict) -> tuple[keras.Input, tf.Tensor]:
    f = config.feature(name)
    owner = f.vocabulary_owner
    if owner not in table:
        rows = data.vocabulary_sizes[owner] + config.feature(owner).vocabulary.num_oov_buckets + 1
        table[owner] = keras.layers.Embedding(rows, dim, mask_zero=mask_zero, name=f"ref_embedding_{owner}")
    x = keras.Input(shape=(f.length,), dtype=tf.int64, name=name)
    return x, table[owner](x)


def _classic(data: Encoded, config: PipelineConfig, sequences: list[str], target: str | None, mask_zero: bool,
             encode_sequences: Callable[[tf.Tensor], tf.Tensor]) -> tuple[keras.Model, list[str]]:
    """Embedding per sequence, stock Concatenate(axis=2), ``encode_sequences``, (+ target), Dense 64."""
    table: dict = {}
    ins, embs = zip(*[_embed(n, data, config, config.feature(n).embedding_dim, mask_zero, table) for n in sequences], strict=True)
    x = encode_sequences(keras.layers.Concatenate(axis=2)(list(embs)))
    ins = list(ins)
    if target:
        t_in, t_emb = _embed(target, data, config, config.feature(target).embedding_dim, mask_zero, table)
        x = keras.layers.Concatenate()([x, keras.layers.Flatten()(t_emb)])
        ins.append(t_in)
    x = keras.layers.Dense(64, activation="relu")(x)
    return keras.Model(ins, keras.layers.Dense(1, activation="sigmoid")(x)), [i.name for i in ins]


def classic_flatten(data: Encoded, config: PipelineConfig, sequences: list[str], target: str | None) -> tuple[keras.Model, list[str]]:
    """Recipe A: Embedding per sequence, Concatenate(axis=2), Flatten, Dense (+ target embedding)."""
    return _classic(data, config, sequences, target, False, keras.layers.Flatten())


def classic_lstm(data: Encoded, config: PipelineConfig, sequences: list[str], target: str | None) -> tuple[keras.Model, list[str]]:
    """Recipe B: mask_zero embeddings, stock Concatenate(axis=2), LSTM (+ target embedding)."""
    return _classic(data, config, sequences, target, True, keras.layers.LSTM(64))

