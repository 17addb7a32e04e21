"""The Trainer's ``run_fn``: read transformed examples, fit the model, export it with signatures.

Next to the SavedModel, under ``assets.extra/embedpipe/`` (which the Pusher copies along and TF
Serving ignores), it writes the model summary, the resolved config it was trained with, and
``training.json``: epochs run, training seconds (fit time without the per-epoch validation),
steps, the per-epoch metrics and the input files it read (``train_files``, ``validation_files``:
what the model was fitted and selected on, so anyone can check the Evaluator's split is not there).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx_bsl.public import tfxio

from embedconfig.config import LABEL_KEY, PipelineConfig, config_from_dict
from models.model import assert_keras_2, build_model
from models.preprocessing import CUSTOM_CONFIG_KEY, vocabulary_name
from models.signatures import make_signatures

MODEL_INFO_DIR = os.path.join("assets.extra", "embedpipe")


def make_dataset(
    files: list[str],
    data_accessor: DataAccessor,
    tft_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool,
    seed: int,
) -> tf.data.Dataset:
    """One pass over transformed examples as ``(features, label)`` batches."""
    options = tfxio.TensorFlowDatasetOptions(
        batch_size=batch_size,
        label_key=LABEL_KEY,
        num_epochs=1,
        shuffle=shuffle,
        shuffle_seed=seed,
    )
    return data_accessor.tf_dataset_factory(files, options, tft_output.transformed_metadata.schema)


def vocabulary_sizes(config: PipelineConfig, tft_output: tft.TFTransformOutput) -> dict[str, int]:
    """Vocabulary size V per vocabulary owner, read from Transform's output."""
    return {f.name: tft_output.vocabulary_size_by_name(vocabulary_name(f.name)) for f in config.preprocessing.vocabulary_owners()}


def compile_model(model: keras.Model, config: PipelineConfig) -> None:
    """Adam + binary cross-entropy, tracking AUC (the early-stopping metric) and accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.training.learning_rate),
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
) -> None:
    """Write the Keras summary, the resolved config and the training record beside the SavedModel."""
    info_dir = os.path.join(export_dir, MODEL_INFO_DIR)
    tf.io.gfile.makedirs(info_dir)
    lines: list[str] = []
    model.summary(print_fn=lines.append, expand_nested=True, line_length=120)
    with tf.io.gfile.GFile(os.path.join(info_dir, "model_summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with tf.io.gfile.GFile(os.path.join(info_dir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "vocabulary_sizes": sizes}, f, indent=2)
    if training is not None:
        with tf.io.gfile.GFile(os.path.join(info_dir, "training.json"), "w") as f:
            json.dump(training, f, indent=2)


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point."""
    assert_keras_2()
    config = config_from_dict(fn_args.custom_config[CUSTOM_CONFIG_KEY])
    if fn_args.hyperparameters:  # per-run settings from the RunParameters component
        values = fn_args.hyperparameters.get("values", fn_args.hyperparameters)
        overrides = {k: values[k] for k in ("epochs", "learning_rate") if k in values}
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, **overrides))
        logging.info("Run parameters: %s", overrides)
    training = config.training
    keras.utils.set_random_seed(training.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    sizes = vocabulary_sizes(config, tft_output)
    logging.info("Vocabulary sizes (before padding/OOV rows): %s", sizes)

    train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output, training.batch_size, True, training.seed)
    # fn_args.eval_files are TFX's name for the eval_args splits: the validation split, never eval
    validation = make_dataset(fn_args.eval_files, fn_args.data_accessor, tft_output, training.batch_size, False, training.seed)

    model = build_model(config, sizes)
    compile_model(model, config)
    model.summary(print_fn=logging.info)

    clock = TrainingClock()
    callbacks: list[keras.callbacks.Callback] = [clock, keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir)]
    if training.early_stopping_patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=training.early_stopping_monitor,
                mode="max" if training.early_stopping_monitor == "val_auc" else "min",
                patience=training.early_stopping_patience,
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
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=make_signatures(model, tft_output, config))
    record = {
        "epochs_run": len(clock.epoch_seconds),
        "train_seconds": sum(clock.epoch_seconds),
        "epoch_seconds": clock.epoch_seconds,
        "steps": clock.steps,
        "batch_size": training.batch_size,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "train_files": list(fn_args.train_files),
        "validation_files": list(fn_args.eval_files),
    }
    logging.info("Training: %d epochs, %.1f s of training batches, %d steps", record["epochs_run"], record["train_seconds"], clock.steps)
    write_model_info(model, config, fn_args.serving_model_dir, sizes, record)
