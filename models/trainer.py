"""The Trainer's ``run_fn``: read the examples through Transform, fit the model, export it with signatures.

Next to the SavedModel, under ``assets.extra/embedpipe/`` (which the Pusher copies along and TF
Serving ignores), it writes the model summary, the resolved config it was trained with, and
``training.json``: epochs run, training seconds (fit time without the per-epoch validation),
steps, the per-epoch metrics and the input files it read (``train_files``, ``validation_files``:
what the model was fitted and selected on, so anyone can check the Evaluator's split is not there).
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from embedconfig.config import LABEL_KEY, PipelineConfig, TrainingConfig, config_as_dict, from_component_config, replace
from models.model import assert_keras_2, build_model
from models.preprocessing import vocabulary_name
from models.signatures import make_signatures
from models.warm_start import MODEL_INFO_DIR, WarmStart, warm_start, write_vocabularies

# tfx_bsl's TensorFlowDatasetOptions.shuffle_buffer_size default: the cached path shuffles alike.
SHUFFLE_BUFFER = 10_000
# Rows parsed per batch when filling the cache; the cache holds these batches, so its overhead per
# tensor is paid once per 1,024 rows, not per row.
CACHE_READ_BATCH = 1024
COUNT_BATCH = 8192  # records per reduce step when counting a split (see count_records)
# tf.data's autotuning, off for the cached splits: once the rows come from memory there is nothing
# left to tune, and its model thread held up every epoch's end. Keras makes a new iterator per
# epoch, and the old one's destructor joins that thread (py-spy --native: RootDataset::Iterator::
# ~Iterator -> UnboundedThreadPool::LogicalThreadWrapper::~LogicalThreadWrapper), seconds per epoch
# boundary when the Trainer ran in the process Transform ran in (LocalDagRunner) and next to none in a
# process of its own (bench/RESULTS.md, "What made the cold run faster (measured side by side)").
# The first pass then parses with one call per core (TF's default parallelism where autotuning is off).
_WITHOUT_AUTOTUNING = tf.data.Options()
_WITHOUT_AUTOTUNING.autotune.enabled = False


def make_dataset(
    files: list[str],
    data_accessor: DataAccessor,
    tft_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool,
    seed: int,
    cache: bool = False,
    pack_rows: bool = True,
    raw: bool = False,
) -> tf.data.Dataset:
    """One pass over the examples as ``(features, label)`` batches of Transform's outputs.

    ``files`` hold Transform's transformed examples, or with ``raw`` ExampleGen's raw examples, which
    go through Transform's graph here, batch by batch, as the serving signatures apply it
    (``training.input``). Without ``cache`` every pass reads, gunzips and parses the TFRecords (TFX's
    TFXIO dataset, shuffled there). With ``cache`` the first pass parses them into memory in the order
    TFXIO reads them (file by file, in name order: ExampleGen's names sort in input order) and every
    pass shuffles the cached rows through the same 10,000-row buffer: the same order semantics,
    without reading the files again (see :func:`decide_caching`)."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=CACHE_READ_BATCH if cache else batch_size,
        label_key=None if raw else LABEL_KEY,
        num_epochs=1,
        shuffle=shuffle and not cache,
        shuffle_seed=seed,
    )
    schema = (tft_output.raw_metadata if raw else tft_output.transformed_metadata).schema
    parsed = data_accessor.tf_dataset_factory(files, options, schema)
    if raw:
        parsed = parsed.map(_transformed_by(tft_output), num_parallel_calls=tf.data.AUTOTUNE)
    return shuffled_batches(parsed, batch_size, shuffle, seed, pack_rows) if cache else parsed


def _transformed_by(tft_output: tft.TFTransformOutput) -> Callable[[dict[str, Any]], tuple[dict[str, tf.Tensor], tf.Tensor]]:
    """Raw batch -> ``(features, label)`` through Transform's graph, each output with the static shape
    the transformed examples would have been parsed with (so the cache packs rows, as it does for those)."""
    layer = tft_output.transform_features_layer()
    specs = tft_output.transformed_feature_spec()

    def transform(raw: dict[str, Any]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        outputs = {name: tf.ensure_shape(t, [None, *specs[name].shape]) for name, t in layer(raw).items()}
        label = outputs.pop(LABEL_KEY)
        return outputs, label

    return transform


def shuffled_batches(parsed: tf.data.Dataset, batch_size: int, shuffle: bool, seed: int, pack_rows: bool = True) -> tf.data.Dataset:
    """Parsed ``(features, label)`` batches, cached in memory, as rows shuffled through the
    10,000-row buffer (reshuffled each pass) and batched again.

    Where every tensor is int64 with a fixed row shape (Transform's outputs here), each row crosses
    unbatch/shuffle/batch as one packed tensor, split back into features and label after batching:
    tf.data pays per row and per component, and the MovieLens config has 11 components. Packed, a
    pass over its transformed train rows took about a quarter of the time, with the same batches in
    the same order (the shuffle draws once per row, whatever the row holds; bench/RESULTS.md,
    "Trainer input: files against memory, raw against transformed"). Anything else (a float or
    ragged output), or ``pack_rows=False`` (the comparison in tests and bench/trainer_input.py),
    takes the dict path. Runs without tf.data's autotuning
    (``_WITHOUT_AUTOTUNING``)."""
    packing = _row_packing(parsed.element_spec) if pack_rows else None
    rows = (parsed if packing is None else parsed.map(packing.pack)).cache().unbatch()
    if shuffle:
        rows = rows.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    batches = rows.batch(batch_size)
    if packing is not None:
        batches = batches.map(packing.unpack)
    return batches.prefetch(tf.data.AUTOTUNE).with_options(_WITHOUT_AUTOTUNING)


@dataclasses.dataclass(frozen=True)
class _RowPacking:
    """How ``(features, label)`` batches of int64 tensors become one [batch, width] tensor and back."""

    names: tuple[str, ...]
    row_shapes: tuple[tuple[int, ...], ...]  # per name; the label is LABEL_KEY

    @property
    def widths(self) -> list[int]:
        return [int(np.prod(shape)) for shape in self.row_shapes]

    def pack(self, features: dict[str, tf.Tensor], label: tf.Tensor) -> tf.Tensor:
        tensors = {**features, LABEL_KEY: label}
        return tf.concat([tf.reshape(tensors[n], [-1, w]) for n, w in zip(self.names, self.widths, strict=True)], axis=1)

    def unpack(self, packed: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        parts = tf.split(packed, self.widths, axis=1)
        tensors = {n: tf.reshape(p, [-1, *shape]) for n, p, shape in zip(self.names, parts, self.row_shapes, strict=True)}
        label = tensors.pop(LABEL_KEY)
        return tensors, label


def _row_packing(element_spec: Any) -> _RowPacking | None:
    features, label = element_spec
    specs = {**features, LABEL_KEY: label}
    if len(specs) != len(features) + 1:
        return None  # a feature named like the label key
    for spec in specs.values():
        if not isinstance(spec, tf.TensorSpec) or spec.dtype != tf.int64 or spec.shape.rank is None or spec.shape.rank < 1 \
                or not spec.shape[1:].is_fully_defined():
            return None
    names = tuple(sorted(specs))
    return _RowPacking(names, tuple(tuple(specs[n].shape[1:].as_list()) for n in names))


def parsed_row_bytes(tft_output: tft.TFTransformOutput) -> int | None:
    """Bytes one transformed example takes as parsed tensors, label included; None if not fixed-size."""
    total = 0
    for spec in tft_output.transformed_feature_spec().values():
        if not isinstance(spec, tf.io.FixedLenFeature):
            return None
        total += max(1, int(np.prod(spec.shape))) * spec.dtype.size
    return total


def count_records(files: list[str]) -> int:
    """TFRecords in ``files`` (glob patterns; gzip when the name ends in .gz), without parsing them."""
    paths = sorted(p for pattern in files for p in tf.io.gfile.glob(pattern))
    gzip = [p.endswith(".gz") for p in paths]
    if not paths or len(set(gzip)) != 1:
        raise ValueError(f"expected TFRecord files of one compression under {files}, found {paths}")
    # Counted in batches: with one reduce step per record, the per-element step, not the gunzip, was
    # the cost (bench/RESULTS.md, "Trainer input: files against memory, raw against transformed").
    records = tf.data.TFRecordDataset(paths, compression_type="GZIP" if gzip[0] else "").batch(COUNT_BATCH)
    return int(records.reduce(np.int64(0), lambda n, batch: n + tf.shape(batch, out_type=tf.int64)[0]))


def parsed_size_mb(files: list[str], tft_output: tft.TFTransformOutput) -> float | None:
    """MB a split's parsed tensors take in memory; None if a transformed feature is not fixed-size.

    Exact: the rows are counted (one read of the compressed files, no parsing) and every row's
    tensors have the same size."""
    row_bytes = parsed_row_bytes(tft_output)
    return None if row_bytes is None else count_records(files) * row_bytes / 2**20


def vocabulary_sizes(config: PipelineConfig, tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """Vocabulary size V per vocabulary owner, read from Transform's output."""
    return {f.name: tft_output.vocabulary_size_by_name(vocabulary_name(f.name)) for f in config.preprocessing.vocabulary_owners()}


def compile_model(model: keras.Model, config: PipelineConfig, optimizer: keras.optimizers.Optimizer | None = None) -> None:
    """Binary cross-entropy with Adam (or ``optimizer``), tracking AUC (the early-stopping metric) and accuracy."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(config.training.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )


class TrainingClock(keras.callbacks.Callback):
    """Time spent on training batches per epoch (validation excluded) and the steps taken."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.steps = 0
        self._started = 0.0
        self._in_train = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started, self._in_train = time.perf_counter(), True

    def _stop(self) -> None:
        if self._in_train:
            self.epoch_seconds.append(time.perf_counter() - self._started)
            self._in_train = False

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1


def write_model_info(
    model: keras.Model,
    config: PipelineConfig,
    export_dir: str,
    sizes: dict[str, int],
    training: dict | None = None,
    vocabulary_files: dict[str, str] | None = None,
) -> None:
    """Write the Keras summary, the resolved config, the training record and the vocabularies (owner ->
    Transform's file; what a later warm start moves embedding rows by) beside the SavedModel."""
    info_dir = os.path.join(export_dir, MODEL_INFO_DIR)
    tf.io.gfile.makedirs(info_dir)
    if vocabulary_files:
        write_vocabularies(info_dir, vocabulary_files)
    lines: list[str] = []
    model.summary(print_fn=lines.append, expand_nested=True, line_length=120)
    with tf.io.gfile.GFile(os.path.join(info_dir, "model_summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with tf.io.gfile.GFile(os.path.join(info_dir, "config.json"), "w") as f:
        json.dump({"config": config_as_dict(config), "vocabulary_sizes": sizes}, f, indent=2)
    if training is not None:
        with tf.io.gfile.GFile(os.path.join(info_dir, "training.json"), "w") as f:
            json.dump(training, f, indent=2)


def cache_plan(sizes_mb: dict[str, float | None], budget_mb: float) -> dict[str, bool]:
    """Which splits to cache, in the given order, while their parsed size fits what is left of the budget."""
    plan = {}
    for split, mb in sizes_mb.items():
        plan[split] = mb is not None and mb <= budget_mb
        budget_mb -= mb if plan[split] else 0
    return plan


def decide_caching(
    train_files: list[str], validation_files: list[str], tft_output: tft.TFTransformOutput, training: TrainingConfig
) -> dict[str, bool]:
    """Cache the train split's parsed tensors when they fit ``training.cache_mb``, then validation in what is left.

    Why: without the cache every epoch reads, gunzips and parses the TFRecords again on the cores
    that train (bench/trainer_input.py). With a fixed ``steps_per_epoch`` an epoch need not read the
    whole split, and tf.data drops a partly filled cache, so nothing is cached then."""
    if training.steps_per_epoch is not None or training.cache_mb == 0:
        logging.info("Not caching the splits in memory: training.steps_per_epoch is set or training.cache_mb is 0")
        return {"train": False, "validation": False}
    sizes = {"train": parsed_size_mb(train_files, tft_output), "validation": parsed_size_mb(validation_files, tft_output)}
    plan = cache_plan(sizes, training.cache_mb)
    logging.info("Parsed split sizes (MB): %s; cached in memory (training.cache_mb %d): %s", sizes, training.cache_mb, plan)
    return plan


def save_model(model: keras.Model, directory: str, signatures: dict[str, Any]) -> None:
    """The SavedModel the Pusher deploys: the serving ``signatures`` (what TF Serving, TFMA and the
    canary call) and the Keras model's layer configs and weights, without each layer's traced calls.

    Why ``save_traces=False``: the traces are only for a Keras ``load_model`` without the layer
    classes; with them imported (``models.model`` registers ours) the model rebuilds from its configs
    (tests/test_model.py). Without them the MovieLens model saves and loads in about half the time,
    and the Evaluator and the canary each load the model it saves
    (bench/RESULTS.md, "What made the cold run faster (measured side by side)")."""
    model.save(directory, save_format="tf", signatures=signatures, save_traces=False)


def start_from_base_model(model: keras.Model, config: PipelineConfig, base_model: str | None, vocabulary_files: dict[str, str]) -> WarmStart:
    """``training.warm_start``: the base model's weights into ``model`` (models/warm_start.py), logged either way."""
    if base_model is None:
        start = WarmStart(base_model=None, from_scratch=["no blessed model yet"])
    else:
        start = warm_start(model, config, base_model, vocabulary_files)
    if start.warm:
        logging.info("Warm start from %s: embedding rows kept per table %s; layers copied: %s", base_model,
                     {o: t.kept for o, t in start.tables.items()}, start.layers_copied)
    else:
        logging.warning("training.warm_start: training from scratch: %s", "; ".join(start.from_scratch))
    return start


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point."""
    assert_keras_2()
    # LocalDagRunner runs every component in one process, and Transform leaves about 160K objects of
    # cyclic garbage behind (Beam's pipeline graph, TFT's TF graphs). Collected here, before any
    # training thread runs, that takes under a second; left to the first full collection that falls
    # during training (it fell in make_signatures) it took several seconds, in some of the cold
    # MovieLens runs (bench/RESULTS.md, "What made the cold run faster (measured side by side)"). In
    # its own process (a Kubeflow pod) there is little to collect.
    gc.collect()
    config = from_component_config(fn_args.custom_config, PipelineConfig)
    if fn_args.hyperparameters:  # per-run settings from the RunParameters component
        values = fn_args.hyperparameters.get("values", fn_args.hyperparameters)
        overrides = {k: values[k] for k in ("epochs", "learning_rate") if k in values}
        config = replace(config, training=replace(config.training, **overrides))
        logging.info("Run parameters: %s", overrides)
    training = config.training
    keras.utils.set_random_seed(training.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    sizes = vocabulary_sizes(config, tft_output)
    logging.info("Vocabulary sizes (before padding/OOV rows): %s", sizes)

    cached = decide_caching(fn_args.train_files, fn_args.eval_files, tft_output, training)
    raw = training.reads_raw_examples  # ExampleGen's examples, or Transform's materialized ones
    train = make_dataset(
        fn_args.train_files, fn_args.data_accessor, tft_output, training.batch_size, True, training.seed, cached["train"], raw=raw
    )
    # fn_args.eval_files are TFX's name for the eval_args splits: the validation split, never eval
    validation = make_dataset(
        fn_args.eval_files, fn_args.data_accessor, tft_output, training.batch_size, False, training.seed, cached["validation"], raw=raw
    )

    model = build_model(config, sizes)
    vocabulary_files = {owner: tft_output.vocabulary_file_by_name(vocabulary_name(owner)) for owner in sizes}
    start = start_from_base_model(model, config, fn_args.base_model, vocabulary_files) if training.warm_start else None
    compile_model(model, config)
    model.summary(print_fn=logging.info)

    clock = TrainingClock()
    callbacks: list[keras.callbacks.Callback] = [clock, keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)]
    early_stopping = training.early_stopping
    if early_stopping.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=early_stopping.monitor,
                mode="max" if early_stopping.monitor == "val_auc" else "min",
                patience=early_stopping.patience,
                min_delta=early_stopping.min_delta,
                restore_best_weights=True,
            )
        )
    history = model.fit(
        train,
        epochs=training.epochs,
        steps_per_epoch=training.steps_per_epoch,
        validation_data=validation,
        callbacks=callbacks,
        verbose=2,
    )
    save_model(model, fn_args.serving_model_dir, make_signatures(model, tft_output, config))
    record = {
        "epochs_run": len(clock.epoch_seconds),
        "train_seconds": sum(clock.epoch_seconds),
        "epoch_seconds": clock.epoch_seconds,
        "steps": clock.steps,
        "batch_size": training.batch_size,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "cached_in_memory": cached,
        "train_files": list(fn_args.train_files),
        "validation_files": list(fn_args.eval_files),
    }
    if start is not None:
        record["warm_start"] = start.as_dict()
    logging.info("Training: %d epochs, %.1f s of training batches, %d steps", record["epochs_run"], record["train_seconds"], clock.steps)
    write_model_info(model, config, fn_args.serving_model_dir, sizes, record, vocabulary_files)
