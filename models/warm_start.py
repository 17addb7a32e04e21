"""Warm start (``training.warm_start``): a new model begins with the last blessed model's weights.

The Trainer's ``base_model`` is the last blessed model's SavedModel. Beside it, under
``assets.extra/embedpipe/``, the Trainer that made it left the config it was trained with and each
vocabulary owner's vocabulary (``vocabularies/<owner>``, Transform's file, one token per line, in id
order). Today's Transform may have built different vocabularies over a moved window: new tokens,
dropped ones, a new order by frequency. So an embedding row moves with its token:

- row 0 (padding) is copied;
- rows 1..V are tokens (id = position in the vocabulary + 1, models/preprocessing.py): a token in
  both vocabularies takes its old row, a new token keeps its fresh initial row;
- the OOV rows (hashed unknown tokens) are copied when ``num_oov_buckets`` is unchanged (the same
  hash puts the same unknown token in the same bucket), fresh otherwise.

Every other layer is copied as it is. Where the model's shape changed (a feature added or dropped,
an ``embedding_dim`` changed, a layer whose weights differ in shape), nothing is copied: the model
trains from scratch, and the reasons name the feature or layer. A half-copied model would mix
weights that were trained together with weights that were not.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from embedconfig.config import ConfigError, PipelineConfig, parse_config

MODEL_INFO_DIR = os.path.join("assets.extra", "embedpipe")  # beside the SavedModel; the Pusher copies it, TF Serving ignores it
VOCABULARIES_DIR = "vocabularies"
EMBEDDING_PREFIX = "embedding_"  # models/model.py names each owner's table embedding_<owner>


def embedding_layer_name(owner: str) -> str:
    """The name models/model.py gives the embedding table of vocabulary owner ``owner``."""
    return f"{EMBEDDING_PREFIX}{owner}"


@dataclasses.dataclass
class TableStart:
    """How one embedding table started: rows taken from the base model by token, and new tokens."""

    kept: int  # tokens in both vocabularies: their rows come from the base model
    new: int  # tokens only in the new vocabulary: fresh rows
    dropped: int  # tokens only in the base model's vocabulary: their rows are gone
    oov_rows_kept: bool


@dataclasses.dataclass
class WarmStart:
    """What the Trainer started from; ``from_scratch`` lists why nothing was copied (empty: warm-started)."""

    base_model: str | None
    from_scratch: list[str] = dataclasses.field(default_factory=list)
    tables: dict[str, TableStart] = dataclasses.field(default_factory=dict)
    layers_copied: list[str] = dataclasses.field(default_factory=list)

    @property
    def warm(self) -> bool:
        return self.base_model is not None and not self.from_scratch

    def as_dict(self) -> dict[str, Any]:
        """The record training.json holds (the run summary reads it)."""
        return {
            "warm": self.warm,
            "base_model": self.base_model,
            "from_scratch": self.from_scratch,
            "tables": {owner: dataclasses.asdict(t) for owner, t in self.tables.items()},
            "layers_copied": self.layers_copied,
        }


def read_vocabulary(path: str) -> list[bytes]:
    """Transform's vocabulary file: one token per line, in id order (ids 1..V in the model)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read().splitlines()


def write_vocabularies(info_dir: str, vocabulary_files: dict[str, str]) -> None:
    """Copy each owner's vocabulary file beside the model, where a later warm start reads it."""
    target = os.path.join(info_dir, VOCABULARIES_DIR)
    tf.io.gfile.makedirs(target)
    for owner, path in vocabulary_files.items():
        tf.io.gfile.copy(path, os.path.join(target, owner), overwrite=True)


def moved_rows(
    base: np.ndarray, base_tokens: list[bytes], tokens: list[bytes], fresh: np.ndarray, base_oov: int, oov: int
) -> tuple[np.ndarray, TableStart]:
    """The new table: ``fresh`` (its initial rows) with the base table's rows moved to their tokens' new ids.

    Rows: 0 padding, 1..V tokens, then the OOV buckets (models/preprocessing.py)."""
    if base.shape[0] != len(base_tokens) + base_oov + 1 or fresh.shape[0] != len(tokens) + oov + 1:
        raise ValueError(f"embedding rows {base.shape[0]} / {fresh.shape[0]} do not fit vocabularies of "
                         f"{len(base_tokens)} / {len(tokens)} tokens with {base_oov} / {oov} OOV buckets")
    rows = fresh.copy()
    rows[0] = base[0]
    base_id = {token: i for i, token in enumerate(base_tokens)}
    pairs = np.array([(j, base_id[t]) for j, t in enumerate(tokens) if t in base_id], dtype=np.int64).reshape(-1, 2)
    rows[pairs[:, 0] + 1] = base[pairs[:, 1] + 1]
    oov_kept = base_oov == oov
    if oov_kept and oov:
        rows[len(tokens) + 1:] = base[len(base_tokens) + 1:]
    kept = len(pairs)
    return rows, TableStart(kept=kept, new=len(tokens) - kept, dropped=len(base_tokens) - kept, oov_rows_kept=oov_kept)


def _config_changes(base: PipelineConfig, config: PipelineConfig) -> list[str]:
    """The changes between the two configs that change the model's shape, in the user's words."""
    reasons = []
    base_features = {f.name: f for f in base.features}
    features = {f.name: f for f in config.features}
    reasons += [f"feature '{name}' is new" for name in features if name not in base_features]
    reasons += [f"feature '{name}' was dropped" for name in base_features if name not in features]
    for name, f in features.items():
        old = base_features.get(name)
        if old is None:
            continue
        if f.vocabulary_owner != old.vocabulary_owner:
            reasons.append(f"feature '{name}' embeds with '{f.vocabulary_owner}'s table, the base model with '{old.vocabulary_owner}'s")
        elif f.vocabulary_owner == name and f.embedding_dim != old.embedding_dim:
            reasons.append(f"embedding_dim of '{name}' changed from {old.embedding_dim} to {f.embedding_dim}")
    return reasons


def _weight_shapes(layer: keras.layers.Layer) -> list[tuple[int, ...]]:
    return [tuple(w.shape) for w in layer.weights]


def _shape_changes(base: keras.Model, model: keras.Model) -> list[str]:
    """Layers whose weights cannot be copied: new, gone, or of another shape (an embedding table's
    row count may differ: its rows move by token)."""
    base_layers = {layer.name: layer for layer in base.layers if layer.weights}
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    reasons = [f"layer '{name}' is new" for name in layers if name not in base_layers]
    reasons += [f"layer '{name}' is gone" for name in base_layers if name not in layers]
    for name, layer in layers.items():
        old = base_layers.get(name)
        if old is None:
            continue
        shapes, old_shapes = _weight_shapes(layer), _weight_shapes(old)
        if name.startswith(EMBEDDING_PREFIX) and len(shapes) == len(old_shapes) == 1:
            shapes, old_shapes = [shapes[0][1:]], [old_shapes[0][1:]]
        if shapes != old_shapes:
            reasons.append(f"layer '{name}' has weights of shape {shapes}, the base model's {old_shapes}")
    return reasons


def _base_model(base_dir: str, config: PipelineConfig) -> tuple[keras.Model | None, PipelineConfig | None, list[str]]:
    """The base model rebuilt from the config it was trained with, its weights loaded; or the reasons it cannot be."""
    from models.model import build_model  # here: models.model imports Keras layers this module does not need at import

    config_path = os.path.join(base_dir, MODEL_INFO_DIR, "config.json")
    if not tf.io.gfile.exists(config_path):
        return None, None, [f"the base model has no {MODEL_INFO_DIR}/config.json"]
    with tf.io.gfile.GFile(config_path) as f:
        info = json.load(f)
    try:
        base_config = parse_config(info["config"], source=config_path)
    except ConfigError as e:
        return None, None, [f"the base model's config no longer loads: {e}"]
    changes = _config_changes(base_config, config)
    if changes:
        return None, base_config, changes
    base = build_model(base_config, info["vocabulary_sizes"])
    # The SavedModel's checkpoint holds the Keras model at its root, beside what only serving uses
    # (Transform's layer, the signatures): those are left unread.
    base.load_weights(os.path.join(base_dir, tf.saved_model.VARIABLES_DIRECTORY, tf.saved_model.VARIABLES_FILENAME)).expect_partial()
    return base, base_config, []


def warm_start(model: keras.Model, config: PipelineConfig, base_dir: str, vocabulary_files: dict[str, str]) -> WarmStart:
    """Start ``model`` (built, not yet trained) from the SavedModel in ``base_dir``.

    ``vocabulary_files``: owner -> today's vocabulary file (Transform's). Returns what was copied, or
    why nothing was (then ``model`` keeps its fresh weights)."""
    result = WarmStart(base_model=base_dir)
    base, base_config, reasons = _base_model(base_dir, config)
    missing = [o for o in vocabulary_files if not tf.io.gfile.exists(os.path.join(base_dir, MODEL_INFO_DIR, VOCABULARIES_DIR, o))]
    if base is not None and missing:
        reasons = [f"the base model has no vocabulary of '{o}' under {MODEL_INFO_DIR}/{VOCABULARIES_DIR}/ "
                   "(trained before warm start existed)" for o in missing]
    if base is not None and not reasons:
        reasons = _shape_changes(base, model)
    if reasons:
        result.from_scratch = reasons
        return result
    base_layers = {layer.name: layer for layer in base.layers}
    new_weights: dict[str, list[np.ndarray]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        old = base_layers[layer.name].get_weights()
        owner = layer.name[len(EMBEDDING_PREFIX):] if layer.name.startswith(EMBEDDING_PREFIX) else None
        if owner in vocabulary_files:
            rows, table = moved_rows(
                old[0],
                read_vocabulary(os.path.join(base_dir, MODEL_INFO_DIR, VOCABULARIES_DIR, owner)),
                read_vocabulary(vocabulary_files[owner]),
                layer.get_weights()[0],
                base_config.feature(owner).vocabulary.num_oov_buckets,
                config.feature(owner).vocabulary.num_oov_buckets,
            )
            new_weights[layer.name] = [rows]
            result.tables[owner] = table
        else:
            new_weights[layer.name] = old
            result.layers_copied.append(layer.name)
    for layer in model.layers:  # all or nothing: set only once every layer's weights are in hand
        if layer.name in new_weights:
            layer.set_weights(new_weights[layer.name])
    return result
