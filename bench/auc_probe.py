"""Issue 15 probe: can a model of the "embeddings concatenated" family reach eval AUC 0.81 on MovieLens-100K?

    TF_USE_LEGACY_KERAS=1 PYTHONHASHSEED=0 taskset -c 1 .venv/bin/python bench/auc_probe.py \
        --data /tmp/ml/examples3 [--config configs/movielens.yaml] [--seeds 0 1 2] [--limit N]

In memory (numpy arrays from ``bench.keras_reference.encode``; no TFX), one process, TF on one thread:

- A: ``configs/movielens.yaml`` as ``models.model.build_model`` builds it (the reference);
- B: A plus a rating-aware target attention (:class:`RatingTargetAttention`) in the concatenation:
  query = the target movie's embedding, keys = the embeddings of ``history`` (the table ``target``
  shares), values = the embeddings of the aligned ``history_ratings`` tokens (the table A's GRU
  reads), padding of ``history`` masked: "how did this user rate movies like this one". Two
  scorings: ``din`` (DIN's MLP over [k, q, k-q, k*q], raw weights, as models.model's
  TargetAttentionPooling) and ``dot`` (q.k / sqrt(d), softmax over the real steps);
- C: B (both scorings), then retrained from scratch on train+validation for the epoch count
  early stopping chose on validation (same seed), scored on eval;
- D: A retrained the same way.

``--tabular``: also fit ``bench/tabular_reference.py``'s gradient-boosted trees (engineered user and
item statistics, then item-item collaborative filtering) on the same rows, once: a yardstick
from outside the neural family.

``--variant-configs NAME=PATH ...`` (with ``--experiments``): also run each of these config files
(A's model, ``build_model``, for another feature set: longer sequences, an added feature), each
encoded from the same rows with its own vocabularies, interleaved with A per seed in the same
process; the data is the one ``--data`` directory for all.

A and B fit on train with early stopping on validation (monitor val_auc, the config's patience,
restore_best_weights) for at most the config's epochs, as the Trainer does. Eval AUC is
``keras.metrics.AUC(num_thresholds=10000)`` on every eval example; eval never chooses anything.
Prints a table and writes JSON (default bench/out/auc_probe.json).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tf_keras as keras  # noqa: E402

from bench.keras_reference import Encoded, encode, read_jsonl  # noqa: E402
from bench.pipeline_wall_time import machine  # noqa: E402
from embedconfig.config import PipelineConfig, load_config, replace  # noqa: E402
from models.model import build_model, prediction_head  # noqa: E402
from models.trainer import SHUFFLE_BUFFER, compile_model  # noqa: E402


class RatingTargetAttention(keras.layers.Layer):
    """Attention pooling whose query, keys and values come from three tensors.

    Inputs ``[query [B, 1, d], keys [B, T, d], values [B, T, dv]]`` -> ``[B, dv]``. The mask is the
    keys' (``history``'s Embedding mask_zero mask, ``[B, T]``); a step masked there gets weight 0 and
    an all-padding row pools to 0. ``scoring``:

    - ``din``: DIN's activation unit, sigmoid MLP ``hidden_units`` over ``[k, q, k-q, k*q]`` then
      Dense(1); the raw scores are the weights (no softmax), as TargetAttentionPooling;
    - ``dot``: ``q.k / sqrt(d)``, softmax over the unmasked steps.
    """

    def __init__(self, scoring: str = "din", hidden_units: tuple[int, ...] = (80, 40), **kwargs):
        super().__init__(**kwargs)
        if scoring not in ("din", "dot"):
            raise ValueError(f"scoring must be din or dot, got {scoring!r}")
        self.scoring = scoring
        self.hidden_units = tuple(hidden_units)
        self.supports_masking = True

    def build(self, input_shape: list[tf.TensorShape]) -> None:
        if self.scoring == "din":
            self.activation_unit = [keras.layers.Dense(u, activation="sigmoid") for u in self.hidden_units]
            self.score = keras.layers.Dense(1)
        super().build(input_shape)

    def call(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> tf.Tensor:
        query, keys, values = inputs
        key_mask = mask[1] if mask is not None else None
        if self.scoring == "din":
            q = tf.broadcast_to(query, tf.shape(keys))
            h = tf.concat([keys, q, keys - q, keys * q], axis=-1)
            for layer in self.activation_unit:
                h = layer(h)
            weights = tf.squeeze(self.score(h), axis=-1)  # [B, T]
            if key_mask is not None:
                weights = weights * tf.cast(key_mask, weights.dtype)
        else:
            logits = tf.squeeze(tf.matmul(keys, query, transpose_b=True), axis=-1)  # [B, T]
            logits = logits / tf.sqrt(tf.cast(tf.shape(keys)[-1], logits.dtype))
            if key_mask is not None:
                logits = tf.where(key_mask, logits, tf.fill(tf.shape(logits), tf.constant(-1e9, logits.dtype)))
            weights = tf.nn.softmax(logits, axis=-1)
            if key_mask is not None:
                weights = weights * tf.cast(key_mask, weights.dtype)
        return tf.reduce_sum(values * weights[:, :, tf.newaxis], axis=1)

    def compute_mask(self, inputs: list[tf.Tensor], mask: list[tf.Tensor | None] | None = None) -> None:
        return None

    def get_config(self) -> dict:
        return {**super().get_config(), "scoring": self.scoring, "hidden_units": list(self.hidden_units)}


def model_a(config: PipelineConfig, sizes: dict[str, int]) -> keras.Model:
    """The config's model, exactly as build_model builds it."""
    return build_model(config, sizes)


def model_b(config: PipelineConfig, sizes: dict[str, int], scoring: str) -> keras.Model:
    """A plus RatingTargetAttention (see :func:`model_spec`)."""
    return model_spec(config, sizes, Spec(f"B-{scoring}", rating_attention=scoring))


@dataclasses.dataclass(frozen=True)
class Spec:
    """One experiment of the extended probe: A's config with overrides, plus optional extra parts.

    ``model`` / ``training``: fields of ``config.model`` / ``config.training`` to replace (e.g.
    ``{"dropout": 0.4}``, ``{"learning_rate": 1e-3, "epochs": 8, "early_stopping": {"patience": 2}}``).
    ``dims``: feature name -> embedding_dim. L2 on the embedding tables is ``model={"embedding_l2": x}``
    (config ``model.l2`` only reaches the Dense kernels and cross layers). ``rating_attention``: add B's RatingTargetAttention (din / dot).
    ``interaction``: add an explicit user x target term (see :func:`interaction_term`).
    ``weight_decay``: AdamW with this decoupled decay instead of Adam.
    """

    description: str
    model: dict = dataclasses.field(default_factory=dict)
    training: dict = dataclasses.field(default_factory=dict)
    dims: dict = dataclasses.field(default_factory=dict)
    rating_attention: str | None = None
    interaction: str | None = None
    weight_decay: float = 0.0


LONGER = {"epochs": 6, "early_stopping": {"patience": 2}}  # room for more epochs to help
LONGER12 = {"epochs": 12, "early_stopping": {"patience": 2}}

SPECS: dict[str, Spec] = {
    "A": Spec("configs/movielens.yaml via build_model (early stop on validation)"),
    # B-din as the original B, through the generic builder (same graph as model_b)
    "Bx-din": Spec("A + rating-aware target attention (DIN scoring), generic builder", rating_attention="din"),
    # 1. regularisation
    "A-p2": Spec("A with epochs 6, patience 2 (control for the regularised runs)", training=LONGER),
    "L2E-1e-5": Spec("A + L2 1e-5 on all embedding tables; epochs 6, patience 2", training=LONGER, model={"embedding_l2": 1e-5}),
    "L2E-1e-4": Spec("A + L2 1e-4 on all embedding tables; epochs 6, patience 2", training=LONGER, model={"embedding_l2": 1e-4}),
    "L2H-1e-4": Spec("A + config model.l2 1e-4 (Dense kernels only); epochs 6, patience 2", training=LONGER, model={"l2": 1e-4}),
    "DO-0.4": Spec("A with dropout 0.4; epochs 6, patience 2", training=LONGER, model={"dropout": 0.4}),
    "DO-0.5": Spec("A with dropout 0.5; epochs 6, patience 2", training=LONGER, model={"dropout": 0.5}),
    "LR-1e-3": Spec("A with learning rate 1e-3; epochs 8, patience 2",
                    training={"learning_rate": 1e-3, "epochs": 8, "early_stopping": {"patience": 2}}),
    "AdamW-0.1": Spec("A with AdamW weight decay 0.1 (decoupled, all variables); epochs 6, patience 2",
                      training=LONGER, weight_decay=0.1),
    # 2. batch size, learning rate scaled by sqrt(batch ratio)
    "BS512": Spec("batch 512, learning rate 4.2e-3 (sqrt scaling); epochs 6, patience 2",
                  training={"batch_size": 512, "learning_rate": 4.2e-3, **LONGER}),
    "BS1024": Spec("batch 1024, learning rate 6e-3 (sqrt scaling); epochs 6, patience 2",
                   training={"batch_size": 1024, "learning_rate": 6e-3, **LONGER}),
    # 3. explicit user x target interaction
    "MF-dot-u": Spec("A + dot(Dense(user emb), target emb) concatenated", interaction="dot-user"),
    "MF-dot-uh": Spec("A + dot(Dense([user emb, pooled history]), target emb) concatenated", interaction="dot-userhist"),
    "MF-prod-uh": Spec("A + Dense([user emb, pooled history]) * target emb (elementwise, 32-d) concatenated",
                       interaction="prod-userhist"),
    # 4./5. combinations (phase 2)
    "L2E-3e-4": Spec("A + L2 3e-4 on all embedding tables; epochs 6, patience 2", training=LONGER, model={"embedding_l2": 3e-4}),
    "L2E-1e-3": Spec("A + L2 1e-3 on all embedding tables; epochs 6, patience 2", training=LONGER, model={"embedding_l2": 1e-3}),
    "L2E-1e-4-DO-0.4": Spec("A + embedding L2 1e-4 + dropout 0.4; epochs 6, patience 2", training=LONGER,
                            model={"embedding_l2": 1e-4, "dropout": 0.4}),
    "Bx-din-L2E-1e-4-DO-0.4": Spec("Bx-din + embedding L2 1e-4 + dropout 0.4; epochs 6, patience 2", training=LONGER,
                                   model={"embedding_l2": 1e-4, "dropout": 0.4}, rating_attention="din"),
    # phase 3: stronger embedding L2 was still improving at the 6-epoch cap -> 12 epochs, patience 2
    "L2E-3e-4-e12": Spec("A + embedding L2 3e-4; epochs 12, patience 2", training=LONGER12, model={"embedding_l2": 3e-4}),
    "L2E-1e-3-e12": Spec("A + embedding L2 1e-3; epochs 12, patience 2", training=LONGER12, model={"embedding_l2": 1e-3}),
    "L2E-1e-3-e20": Spec("A + embedding L2 1e-3; epochs 20, patience 2", training={"epochs": 20, "early_stopping": {"patience": 2}}, model={"embedding_l2": 1e-3}),
    "W-L2E-3e-4-e12": Spec("wider embeddings (user 32, history/target 64) + embedding L2 3e-4; epochs 12, patience 2",
                           training=LONGER12, dims={"user": 32, "history": 64, "target": 64}, model={"embedding_l2": 3e-4}),
    "Bx-din-L2E-3e-4-e12": Spec("Bx-din + embedding L2 3e-4; epochs 12, patience 2", training=LONGER12,
                                rating_attention="din", model={"embedding_l2": 3e-4}),
    "W-L2E-1e-4": Spec("wider embeddings (user 32, history/target 64) + embedding L2 1e-4; epochs 6, patience 2",
                       training=LONGER, dims={"user": 32, "history": 64, "target": 64}, model={"embedding_l2": 1e-4}),
    "Bx-din-L2E-1e-4": Spec("Bx-din + embedding L2 1e-4; epochs 6, patience 2", training=LONGER,
                            rating_attention="din", model={"embedding_l2": 1e-4}),
}


# The A/B/C/D runs (without --experiments), as the tables name them
DESCRIBED = {
    "A": "configs/movielens.yaml via build_model (early stop on validation)",
    "B-din": "A + rating-aware target attention, DIN MLP scoring, raw weights",
    "B-dot": "A + rating-aware target attention, scaled dot product, softmax",
    "C-din": "B-din retrained on train+validation for B-din's best epoch count",
    "C-dot": "B-dot retrained on train+validation for B-dot's best epoch count",
    "D": "A retrained on train+validation for A's best epoch count",
}


def spec_config(config: PipelineConfig, spec: Spec) -> PipelineConfig:
    """``config`` with the spec's model / training / embedding_dim overrides."""
    features = tuple(replace(f, embedding_dim=spec.dims.get(f.name, f.embedding_dim)) for f in config.features)
    return replace(config, features=features, model=replace(config.model, **spec.model),
                               training=replace(config.training, **spec.training))


def interaction_term(base: keras.Model, kind: str) -> tf.Tensor:
    """An explicit user x target term from A's per-feature vectors (matrix-factorisation-like).

    ``dot-user``: ``<W u, t>`` with u the user id embedding; ``dot-userhist``: ``<W [u, h], t>`` with h
    the mean-pooled history (same table as t); both ``[B, 1]``. ``prod-userhist``: ``W [u, h] * t``,
    ``[B, d_t]``. W is a bias-free Dense into the target's dimension."""
    user = base.get_layer("pool_user").output
    history = base.get_layer("pool_history").output
    target = base.get_layer("pool_target").output
    dim = int(target.shape[-1])
    source = user if kind == "dot-user" else keras.layers.Concatenate(name="mf_user_history")([user, history])
    projected = keras.layers.Dense(dim, use_bias=False, name="mf_project")(source)
    if kind.startswith("dot"):
        return keras.layers.Dot(axes=1, name="mf_dot")([projected, target])
    if kind == "prod-userhist":
        return keras.layers.Multiply(name="mf_product")([projected, target])
    raise ValueError(f"unknown interaction {kind!r}")


def model_spec(config: PipelineConfig, sizes: dict[str, int], spec: Spec) -> keras.Model:
    """build_model for the spec's config; with extra parts, A's head is rebuilt on the longer vector.

    RatingTargetAttention reads the inputs of A's per-feature encoders: ``pool_target`` ([B,1,32],
    the history table), ``pool_history`` ([B,50,32], same table), ``gru_history_ratings``
    ([B,50,4], history_ratings' own table), each carrying its Embedding's mask."""
    base = build_model(config, sizes)
    extra: list[tf.Tensor] = []
    if spec.rating_attention:
        query = base.get_layer("pool_target").input
        keys = base.get_layer("pool_history").input
        values = base.get_layer("gru_history_ratings").input
        extra.append(RatingTargetAttention(spec.rating_attention, name=f"rating_attention_{spec.rating_attention}")([query, keys, values]))
    if spec.interaction:
        extra.append(interaction_term(base, spec.interaction))
    if not extra:
        return base
    # A's head (build_model's prediction_head) on the longer vector
    x = keras.layers.Concatenate(axis=-1, name="concat_features_x")(list(base.get_layer("concat_features").input) + extra)
    return keras.Model(inputs=base.inputs, outputs=prediction_head(x, config.model), name="probe_spec")


def compile_spec(model: keras.Model, config: PipelineConfig, spec: Spec) -> None:
    """compile_model, with AdamW instead of Adam when the spec has weight decay."""
    optimizer = keras.optimizers.AdamW(config.training.learning_rate, weight_decay=spec.weight_decay) if spec.weight_decay else None
    compile_model(model, config, optimizer)


def eval_auc(model: keras.Model, x: dict[str, np.ndarray], y: np.ndarray) -> float:
    """Keras AUC with 10,000 thresholds over every eval example."""
    metric = keras.metrics.AUC(num_thresholds=10000)
    metric.update_state(y, model.predict(x, batch_size=4096, verbose=0).reshape(-1))
    return float(metric.result().numpy())


ORDER = "random"  # set from --order in main()


def _train_input(data: Encoded, batch_size: int, seed: int) -> dict[str, Any]:
    """``model.fit`` keyword arguments for the training rows.

    ``random``: numpy arrays, Keras shuffles all rows each epoch. ``file_buffer``: the rows in file
    order (the JSONL is grouped by user, by time) through a 10,000-record shuffle buffer, reshuffled
    each epoch, as the Trainer's TFXIO dataset reads ExampleGen's in-order TFRecords."""
    if ORDER == "random":
        return {"x": data.train, "y": data.train_labels, "batch_size": batch_size, "shuffle": True}
    ds = tf.data.Dataset.from_tensor_slices((data.train, data.train_labels))
    ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return {"x": ds}


def fit_early_stopped(make: Callable[[], keras.Model], config: PipelineConfig, data: Encoded, val: tuple, seed: int,
                      compile_fn: Callable[[keras.Model, PipelineConfig], None] = compile_model) -> dict[str, Any]:
    """Fit on train, early stopping on validation (restore best), score eval."""
    t = config.training
    keras.utils.set_random_seed(seed)
    model = make()
    compile_fn(model, config)
    es = t.early_stopping
    stop = keras.callbacks.EarlyStopping(monitor=es.monitor, mode="max" if es.monitor == "val_auc" else "min",
                                         patience=es.patience, restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(**_train_input(data, t.batch_size, seed), epochs=t.epochs, validation_data=val,
                        validation_batch_size=t.batch_size, callbacks=[stop], verbose=0)
    seconds = time.perf_counter() - start
    return {
        "seed": seed,
        "auc": eval_auc(model, data.eval, data.eval_labels),
        "epochs": stop.best_epoch + 1,
        "epochs_run": len(history.history["loss"]),
        "fit_seconds": seconds,
        "val_auc": [float(v) for v in history.history["val_auc"]],
        "params": int(model.count_params()),
    }


def fit_fixed(make: Callable[[], keras.Model], config: PipelineConfig, data: Encoded, epochs: int, seed: int) -> dict[str, Any]:
    """Fit from scratch on ``data.train`` for ``epochs`` (no validation), score eval."""
    t = config.training
    keras.utils.set_random_seed(seed)
    model = make()
    compile_model(model, config)
    start = time.perf_counter()
    model.fit(**_train_input(data, t.batch_size, seed), epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    return {"seed": seed, "auc": eval_auc(model, data.eval, data.eval_labels), "epochs": epochs, "epochs_run": epochs,
            "fit_seconds": seconds, "params": int(model.count_params())}


def split_encode(config: PipelineConfig, train_rows: list, val_rows: list, eval_rows: list,
                 with_full: bool = True) -> tuple[Encoded, tuple, Encoded | None]:
    """(train -> eval arrays, validation arrays, train+validation -> eval arrays); vocabularies from the fitted rows.
    ``with_full=False``: no train+validation arrays (None; only C and D use them)."""
    data = encode(config, train_rows, val_rows + eval_rows)
    n = len(val_rows)
    val = ({k: v[:n] for k, v in data.eval.items()}, data.eval_labels[:n])
    fit = Encoded(data.train, {k: v[n:] for k, v in data.eval.items()}, data.train_labels, data.eval_labels[n:], data.vocabulary_sizes)
    full = encode(config, train_rows + val_rows, eval_rows) if with_full else None
    return fit, val, full


def main() -> None:
    """Run A, B (din, dot), C (din, dot), D over the seeds; print the table; write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="directory with train.jsonl, validation.jsonl, eval.jsonl")
    parser.add_argument("--config", default="configs/movielens.yaml")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each split (smoke test)")
    parser.add_argument("--skip", nargs="*", default=[], help="experiments to skip: C D")
    parser.add_argument("--order", choices=("random", "file_buffer"), default="random",
                        help="training row order: full reshuffle, or file order through a 10,000-row shuffle buffer (as the Trainer)")
    parser.add_argument("--experiments", nargs="*", default=None,
                        help=f"run A plus these Spec experiments ({', '.join(n for n in SPECS if n != 'A')}) instead of A/B/C/D")
    parser.add_argument("--variant-configs", nargs="*", default=[], metavar="NAME=PATH",
                        help="with --experiments: also run A's model (build_model) for each of these config files on the same data")
    parser.add_argument("--tabular", action="store_true",
                        help="also fit bench/tabular_reference.py's gradient-boosted trees on the same rows (once)")
    parser.add_argument("--output", default="bench/out/auc_probe.json")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant_configs)
    if variants and args.experiments is None:
        parser.error("--variant-configs needs --experiments (give it with no names to run only A and the variants)")
    if set(variants) & (set(SPECS) | set(DESCRIBED)):
        parser.error("variant names must differ from the experiment names")
    global ORDER
    ORDER = args.order
    wall = time.perf_counter()

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    config = load_config(args.config)
    rows = {s: read_jsonl(os.path.join(args.data, f"{s}.jsonl"))[: args.limit] for s in ("train", "validation", "eval")}
    data, val, full = split_encode(config, rows["train"], rows["validation"], rows["eval"], with_full=args.experiments is None)
    print(f"train {len(data.train_labels)}  validation {len(val[1])}  eval {len(data.eval_labels)}  "
          f"positive rate eval {data.eval_labels.mean():.3f}  vocab {data.vocabulary_sizes}", flush=True)
    variant_data: dict[str, tuple[PipelineConfig, Encoded, tuple]] = {}
    for vname, vpath in variants.items():
        vconfig = load_config(vpath)
        vdata, vval, _ = split_encode(vconfig, rows["train"], rows["validation"], rows["eval"], with_full=False)
        assert np.array_equal(vdata.eval_labels, data.eval_labels) and np.array_equal(vval[1], val[1])
        variant_data[vname] = (vconfig, vdata, vval)
        print(f"variant {vname}: {vpath}  features {[(f.name, f.length, f.embedding_dim) for f in vconfig.features]}  "
              f"vocab {vdata.vocabulary_sizes}", flush=True)

    makers = {
        "A": lambda d: (lambda: model_a(config, d.vocabulary_sizes)),
        "B-din": lambda d: (lambda: model_b(config, d.vocabulary_sizes, "din")),
        "B-dot": lambda d: (lambda: model_b(config, d.vocabulary_sizes, "dot")),
    }
    # experiment -> (description, runs)
    results: dict[str, dict[str, Any]] = {}

    def record(name: str, what: str, run: dict[str, Any]) -> None:
        results.setdefault(name, {"description": what, "runs": []})["runs"].append(run)
        print(f"  {name:<6} seed {run['seed']}: eval AUC {run['auc']:.4f}  epochs {run['epochs']}/{run['epochs_run']}  "
              f"{run['fit_seconds']:.0f} s  val_auc {run.get('val_auc', '-')}", flush=True)

    def write_runs(stem: str, name: str, **about: Any) -> None:
        """One experiment's runs so far, with what it was, rewritten after every seed."""
        with open(f"{stem}.{name}.json", "w") as f:
            json.dump({"argv": sys.argv, "experiment": name, **about, "date": datetime.datetime.now().isoformat(timespec="seconds"),
                       "order": args.order, **results[name]}, f, indent=2)

    if args.experiments is not None:
        names = ["A"] + [n for n in args.experiments if n != "A"]
        unknown = [n for n in names if n not in SPECS]
        if unknown:
            parser.error(f"unknown experiments {unknown}; known: {list(SPECS)}")
        stem = os.path.splitext(args.output)[0]
        for seed in args.seeds:
            for name in names:
                spec = SPECS[name]
                cfg = spec_config(config, spec)
                run = fit_early_stopped(lambda cfg=cfg, spec=spec: model_spec(cfg, data.vocabulary_sizes, spec), cfg, data, val, seed,
                                        compile_fn=lambda m, c, spec=spec: compile_spec(m, c, spec))
                record(name, spec.description, run)
                write_runs(stem, name, spec=dataclasses.asdict(spec))
            for vname, (vconfig, vdata, vval) in variant_data.items():
                run = fit_early_stopped(lambda vconfig=vconfig, vdata=vdata: build_model(vconfig, vdata.vocabulary_sizes),
                                        vconfig, vdata, vval, seed)
                record(vname, f"build_model for {variants[vname]}", run)
                write_runs(stem, vname, config=variants[vname])
    for seed in args.seeds if args.experiments is None else ():  # the Spec experiments replace A/B/C/D
        for name in ("A", "B-din", "B-dot"):
            run = fit_early_stopped(makers[name](data), config, data, val, seed)
            record(name, DESCRIBED[name], run)
            retrain = {"A": "D", "B-din": "C-din", "B-dot": "C-dot"}[name]
            if retrain[0] in args.skip:
                continue
            record(retrain, DESCRIBED[retrain], fit_fixed(makers[name](full), config, full, run["epochs"], seed))

    if args.tabular:
        from bench.tabular_reference import FEATURE_SETS, run_references

        # once: without early stopping or subsampling the trees do not use their seed (seeds 0 and 1
        # gave the same AUCs to the fourth decimal, 2026-12-02)
        for name, run in run_references(config, rows, args.seeds[0]).items():
            record(name, FEATURE_SETS[name], run)

    print(f"\nmachine: {machine()}, TF {tf.__version__}, 1 intra/1 inter-op thread; "
          f"date {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"data: {os.path.abspath(args.data)} (train {len(data.train_labels)} / validation {len(val[1])} / eval {len(data.eval_labels)}); "
          f"config {args.config}; seeds {args.seeds}; training order {args.order}")
    print("eval AUC = keras AUC(num_thresholds=10000) on all eval rows; epochs = best epoch on validation (A/B) or retrain epochs (C/D)\n")
    print(f"| {'experiment':<10} | {'mean AUC':>8} | {'std':>6} | {'vs A':>7} | {'per-seed AUC':<22} | {'epochs':<7} | {'fit s':<15} |")
    print(f"|{'-' * 12}|{'-' * 9}:|{'-' * 7}:|{'-' * 8}:|{'-' * 24}|{'-' * 9}|{'-' * 17}|")
    a_mean = statistics.mean(r["auc"] for r in results["A"]["runs"])
    for name, res in results.items():
        aucs = [r["auc"] for r in res["runs"]]
        res["mean_auc"] = statistics.mean(aucs)
        res["std_auc"] = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
        res["delta_vs_A"] = res["mean_auc"] - a_mean
        print(f"| {name:<10} | {res['mean_auc']:>8.4f} | {res['std_auc']:>6.4f} | {res['delta_vs_A']:>+7.4f} | "
              f"{' '.join(f'{a:.4f}' for a in aucs):<22} | {' '.join(str(r['epochs']) for r in res['runs']):<7} | "
              f"{' '.join(str(round(r['fit_seconds'])) for r in res['runs']):<15} |")
    wall = time.perf_counter() - wall
    print(f"\nwall time {wall:.0f} s")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"argv": sys.argv, "machine": machine(), "date": datetime.datetime.now().isoformat(timespec="seconds"), "data": os.path.abspath(args.data),
                   "config": args.config, "seeds": args.seeds, "order": args.order, "wall_seconds": wall, "experiments": results}, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
