"""The Trainer's input: raw examples through Transform's graph give exactly the rows Transform
writes, and the Trainer fits on either (``training.input``); with the parsed splits cached in
memory (models/trainer.py), every epoch sees every row exactly once, reshuffled, and never reads
the files again; and a split is cached only when its parsed tensors fit ``training.cache_mb``.
Through TFX's own TFXIO dataset over the small model's real ExampleGen and Transform outputs."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx.components.util import tfxio_utils
from tfx.utils import path_utils

from embedconfig.config import TRAIN, VALIDATION, replace
from models.trainer import (
    MODEL_INFO_DIR,
    _row_packing,
    cache_plan,
    count_records,
    decide_caching,
    make_dataset,
    parsed_row_bytes,
    shuffled_batches,
)
from tests.helpers.executors import run_trainer
from tests.helpers.synthetic_requests import SERIALIZED

# The small model's build (real ExampleGen, Transform, Trainer; shared with the serving and Beam-mode
# tests) is too slow for the unit tier.
pytestmark = pytest.mark.e2e


def _accessor(transformed) -> DataAccessor:
    return DataAccessor(tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact([transformed], []),
                        record_batch_factory=None, data_view_decode_fn=None)


def _rows(dataset: tf.data.Dataset) -> list[tuple]:
    """Every row of one pass, as a hashable tuple of its feature values and label, in order."""
    rows = []
    for features, label in dataset.as_numpy_iterator():
        names = sorted(features)
        for i in range(len(label)):
            rows.append(tuple(np.asarray(features[n][i]).tobytes() for n in names) + (np.asarray(label[i]).tobytes(),))
    return rows


@pytest.fixture(scope="module")
def train_copy(small_model_build, tmp_path_factory: pytest.TempPathFactory):
    """The small model's transformed train split, copied so that a test may delete the files."""
    built = small_model_build
    source = Path(built.transformed.uri) / f"Split-{TRAIN}"
    target = tmp_path_factory.mktemp("train_copy")
    for name in os.listdir(source):
        tf.io.gfile.copy(str(source / name), str(target / name))
    return built, [str(target / "*")]


def test_cached_epochs_see_every_row_once_reshuffled_and_read_no_file_again(train_copy) -> None:
    built, files = train_copy
    tft_output = tft.TFTransformOutput(built.transform_graph.uri)
    accessor = _accessor(built.transformed)
    from_files = collections.Counter(_rows(make_dataset(files, accessor, tft_output, 64, True, 0, cache=False)))
    assert sum(from_files.values()) == count_records(files) > 500

    cached = make_dataset(files, accessor, tft_output, 64, True, 0, cache=True)
    first = _rows(cached)
    for path in tf.io.gfile.glob(files[0]):  # the second epoch must come from memory
        tf.io.gfile.remove(path)
    second = _rows(cached)
    assert collections.Counter(first) == collections.Counter(second) == from_files
    assert first != second  # reshuffled each epoch, as TFXIO's shuffle is


@pytest.mark.parametrize("cache", [False, True], ids=["parsed every pass", "cached"])
def test_raw_examples_through_transforms_graph_are_the_rows_transform_writes(small_model_build, cache: bool) -> None:
    """``training.input: raw`` (the default) must feed the model what ``transformed`` would: every
    row, label included, with the same shapes (so the cache packs rows either way)."""
    built = small_model_build
    tft_output = tft.TFTransformOutput(built.transform_graph.uri)
    for split in (TRAIN, VALIDATION):
        raw = make_dataset([os.path.join(built.examples.uri, f"Split-{split}", "*")], _accessor(built.examples),
                           tft_output, 64, False, 0, cache=cache, raw=True)
        transformed = make_dataset([os.path.join(built.transformed.uri, f"Split-{split}", "*")], _accessor(built.transformed),
                                   tft_output, 64, False, 0, cache=cache)
        assert raw.element_spec == transformed.element_spec
        rows = collections.Counter(_rows(raw))
        # the same rows; the order may differ: Transform's Beam read ExampleGen's shards in the
        # directory's listing order, TFXIO reads them in name order
        assert rows == collections.Counter(_rows(transformed)) and sum(rows.values()) > 100, split


def test_the_trainer_fits_on_transforms_splits_when_told_to(small_model_build, tmp_path: Path) -> None:
    """``training.input: transformed`` (TFX's own wiring): the same run_fn fits on Transform's
    splits, caches them, and exports a model that scores raw examples."""
    built = small_model_build
    config = built.config
    config = replace(config, training=replace(config.training, input="transformed", epochs=1))
    model_dir = path_utils.serving_model_dir(run_trainer(config, built.examples, built.transformed, built.transform_graph, tmp_path).uri)
    with open(os.path.join(model_dir, MODEL_INFO_DIR, "training.json")) as f:
        record = json.load(f)
    assert record["train_files"] and record["validation_files"], record
    assert all(path.startswith(built.transformed.uri) for path in record["train_files"] + record["validation_files"]), record
    assert record["cached_in_memory"] == {"train": True, "validation": True}
    scores = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant(SERIALIZED))["probability"].numpy()
    assert scores.shape == (len(SERIALIZED), 1) and np.all((scores > 0) & (scores < 1))


@pytest.mark.parametrize("with_float", [False, True], ids=["int64 packed", "float falls back"])
def test_packed_rows_are_the_dict_rows_in_the_same_order_every_pass(with_float: bool) -> None:
    """Packing each row into one tensor must not change a batch, nor the shuffle's order."""
    rng = np.random.default_rng(0)
    n = 3000
    features = {"history": rng.integers(0, 50, (n, 7)), "user": rng.integers(0, 9, (n, 1))}
    if with_float:
        features["score"] = rng.random((n, 1)).astype(np.float32)
    parsed = tf.data.Dataset.from_tensor_slices((features, rng.integers(0, 2, (n, 1)))).batch(1024)
    assert (_row_packing(parsed.element_spec) is None) == with_float
    batches = shuffled_batches(parsed, 64, True, 0)
    as_dicts = shuffled_batches(parsed, 64, True, 0, pack_rows=False)
    first = _rows(batches)
    assert first == _rows(as_dicts) and len(first) == n
    second = _rows(batches)
    assert second == _rows(as_dicts) and second != first, "reshuffled each pass, alike"
    assert batches.element_spec == as_dicts.element_spec


def test_the_size_rule_is_exact_and_caches_only_what_fits() -> None:
    assert cache_plan({"train": 700.0, "validation": 200.0}, 1024) == {"train": True, "validation": True}
    assert cache_plan({"train": 700.0, "validation": 400.0}, 1024) == {"train": True, "validation": False}
    assert cache_plan({"train": 1500.0, "validation": 400.0}, 1024) == {"train": False, "validation": True}
    assert cache_plan({"train": None, "validation": 1.0}, 1024) == {"train": False, "validation": True}


def test_the_trainer_caches_the_small_models_splits_and_says_so(small_model_build) -> None:
    built = small_model_build
    tft_output = tft.TFTransformOutput(built.transform_graph.uri)
    spec = tft_output.transformed_feature_spec()
    assert parsed_row_bytes(tft_output) == sum(int(np.prod(s.shape or [1])) * s.dtype.size for s in spec.values())
    with open(os.path.join(built.saved_model, MODEL_INFO_DIR, "training.json")) as f:
        assert json.load(f)["cached_in_memory"] == {"train": True, "validation": True}
    files = {s: [os.path.join(built.transformed.uri, f"Split-{s}", "*")] for s in (TRAIN, VALIDATION)}
    training = built.config.training
    for change in ({"cache_mb": 0}, {"steps_per_epoch": 3}):
        plan = decide_caching(files[TRAIN], files[VALIDATION], tft_output, replace(training, **change))
        assert plan == {"train": False, "validation": False}, change


def test_signatures_traced_from_an_edited_source_file_are_refused_before_export(small_model_build, tmp_path: Path) -> None:
    """AutoGraph converts the signature functions from their source file when they are traced. A copy
    of models/signatures.py, imported and then given one more comment line (an editor saving during
    a run), traces ``classify`` as ``serving_default``; check_traced_outputs stops it, where the model
    used to be exported that way and refused only by the serving canary. (Every other export in the
    suite traces the unedited module as written. A process that traced before the edit keeps its
    first conversion: AutoGraph caches it by code object.)"""
    import subprocess
    import sys

    copy = tmp_path / "edited_signatures.py"
    copy.write_text((Path(__file__).resolve().parents[1] / "models" / "signatures.py").read_text())
    probe = f"""
import importlib.util
import tf_keras as keras
import tensorflow_transform as tft
import models.model  # our layers, registered for load_model
from tests.helpers.small_model import SmallModel
spec = importlib.util.spec_from_file_location("edited_signatures", {str(copy)!r})
signatures = importlib.util.module_from_spec(spec); spec.loader.exec_module(signatures)
built = SmallModel(__import__("pathlib").Path({str(small_model_build.work)!r}))
model = keras.models.load_model(built.saved_model)
tft_output = tft.TFTransformOutput(built.transform_graph.uri)
text = open({str(copy)!r}).read()
open({str(copy)!r}, "w").write(text.replace("    # One tf.function,", "    # one more line\\n    # One tf.function,", 1))
try:
    signatures.make_signatures(model, tft_output, built.config)
    print("TRACED AS WRITTEN AFTER THE EDIT")
except RuntimeError as e:
    print("REFUSED", e)
"""
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert "REFUSED signature 'classify' was traced to return ['probability'], not ['classes', 'scores']" in run.stdout, \
        run.stdout + run.stderr[-3000:]
