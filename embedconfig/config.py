"""The YAML config that drives a run, declared once: each field with its type, default, allowed
values and bounds, in the YAML's own shape (``config.data.split.files`` is ``data: split: files:``).

pydantic v2 validates it (``parse_config``, the one loader: YAML files through ``load_config``, and
the JSON every component receives through ``components_config``) and exports the JSON Schema
(``embedpipe config schema``). Errors are :class:`ConfigError`, worded as before pydantic and named
by the field's dotted path (embedconfig/errors.py translates pydantic's). Every other module gets a
validated :class:`PipelineConfig` (or one of its sections) and never checks it again. Relative
paths in a config file resolve against the directory that holds the file.
"""

from __future__ import annotations

import operator
import os
import warnings
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping, TypeVar, Union, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from embedconfig.beam_profiles import RUNNERS, beam_args_for
from embedconfig.errors import ConfigError, config_error_from
from embedconfig.model_shapes import check_model_shapes

LABEL_KEY = "label"  # name of the transformed 0/1 label; raw features may not use it

# The three splits, the one place they are named. The Trainer fits on train and picks its best
# epoch (early stopping) on validation; the Evaluator reports and gates on eval only, which nothing
# upstream has looked at, so the blessing is not decided on the data that chose the model.
TRAIN, VALIDATION, EVAL = "train", "validation", "eval"
SPLITS = (TRAIN, VALIDATION, EVAL)
# Without data.split: eval keeps the 20% share it had before validation existed (the gate's noise,
# and the no-regression tolerances tuned for it, are unchanged); validation takes 10% from train,
# enough to rank epochs for early stopping.
DEFAULT_HASH_BUCKETS = {TRAIN: 7, VALIDATION: 1, EVAL: 2}

DataFormat = Literal["jsonl", "csv", "tfrecord"]
BadRecordPolicy = Literal["fail", "skip"]  # fail: stop at the first bad record | skip: reject it to the rejects file
FeatureKind = Literal["sequence", "id"]
Dtype = Literal["string", "int"]
LabelDtype = Literal["int", "float", "string"]
Truncation = Literal["keep_last", "keep_first"]
Padding = Literal["end", "start"]  # where the 0s go; "start" right-aligns the tokens (Keras pad_sequences' "pre")
ModelType = Literal["pooled", "concat_flatten", "concat_rnn"]
Pooling = Literal["mean", "sum", "max", "lstm", "gru", "attention", "target_attention"]
RnnCell = Literal["lstm", "gru"]
EarlyStoppingMonitor = Literal["val_auc", "val_loss"]
# What the Trainer reads (training.input). raw: ExampleGen's examples, Transform's graph applied in
# the Trainer's tf.data pipeline as the serving signatures apply it, and Transform writes no
# transformed examples (TFX's Transform(materialize=False)). transformed: Transform writes every
# split's transformed examples and the Trainer parses them (TFX's default).
TrainerInput = Literal["raw", "transformed"]
TfmaMetric = Literal[
    "AUC",
    "BinaryAccuracy",
    "Precision",
    "Recall",
    "Calibration",
    "ExampleCount",
    "MeanLabel",
    "MeanPrediction",
    "AUCPrecisionRecall",
    "BinaryCrossentropy",
]
Bound = Literal["lower_bound", "upper_bound"]
DATA_FORMATS, FEATURE_KINDS, DTYPES = get_args(DataFormat), get_args(FeatureKind), get_args(Dtype)
POOLINGS, TRAINER_INPUTS, TFMA_METRICS = get_args(Pooling), get_args(TrainerInput), get_args(TfmaMetric)
HIGHER_IS_BETTER = ("AUC", "BinaryAccuracy", "Precision", "Recall", "AUCPrecisionRecall")
LOWER_IS_BETTER = ("BinaryCrossentropy",)
# The label rule's operators, the one table of them: symbol -> (Python operator for raw values,
# name of the tf.math function Transform applies).
LABEL_OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    ">=": (operator.ge, "greater_equal"),
    "<=": (operator.le, "less_equal"),
    "==": (operator.eq, "equal"),
    "!=": (operator.ne, "not_equal"),
    ">": (operator.gt, "greater"),
    "<": (operator.lt, "less"),
}

# Scalars as YAML writes them: no "3" for an int, no true for a number (pydantic's lax mode would
# take both); an int is a number.
Number = Annotated[float, Strict()]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
Count = Annotated[StrictInt, Field(ge=0)]


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """A relative path resolves against the config file's directory (``context['base_dir']``)."""
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is None or "://" in value or os.path.isabs(value):
        return value
    resolved = os.path.normpath(str(Path(base_dir) / value))
    return resolved + "/" if value.endswith("/") else resolved  # "a directory" (of split files, of a span's files)


# A path or URI to data, artifacts or models (a local path, gs://, s3://).
PathStr = Annotated[StrictStr, AfterValidator(_resolve_path)]


class Section(BaseModel):
    """A mapping of the config: unknown keys refused, immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=False, use_attribute_docstrings=True)


S = TypeVar("S", bound=Section)


def replace(section: S, **changes: Any) -> S:
    """A copy of ``section`` with ``changes``, validated again like a config file."""
    try:
        copy = type(section).model_validate({**section.model_dump(), **changes})
    except ValidationError as e:
        raise config_error_from(e, type(section), {**section.model_dump(), **changes}) from None
    if section.__pydantic_private__:
        copy.__pydantic_private__ = dict(section.__pydantic_private__)
    return copy


# --------------------------------------------------------------------------- sections


class RunConfig(Section):
    """Pipeline identity and where its artifacts and metadata live."""

    name: StrictStr
    root: PathStr
    """Default: runs/<name>/root beside the config file."""
    metadata_path: PathStr
    """The SQLite ML Metadata store of local runs. Default: runs/<name>/metadata.sqlite."""
    enable_cache: StrictBool = True


class SplitConfig(Section):
    """How raw examples are split into train, validation and eval: hash buckets or one file pattern each."""

    hash_buckets: dict[StrictStr, PositiveInt] | None = None
    """{train: 7, validation: 1, eval: 2} (the default when neither is given)."""
    files: dict[StrictStr, StrictStr] | None = None
    """{train: "train*", validation: "validation*", eval: "eval*"}, relative to data.path."""

    @model_validator(mode="after")
    def _one_way_to_split(self) -> SplitConfig:
        if self.hash_buckets and self.files:
            raise ConfigError("", "give either hash_buckets or files, not both")
        if not self.hash_buckets and not self.files:
            object.__setattr__(self, "hash_buckets", dict(DEFAULT_HASH_BUCKETS))
        if self.hash_buckets:
            _check_splits("hash_buckets", self.hash_buckets, "validation: 1 (e.g. {train: 7, validation: 1, eval: 2})")
        if self.files:
            _check_splits("files", self.files, 'validation: "validation*" (a pattern of its own files)')
        return self


def _check_splits(field: str, mapping: Mapping[str, Any], add_validation: str) -> None:
    """Exactly the three splits."""
    if VALIDATION not in mapping and set(mapping) == {TRAIN, EVAL}:
        # the old two-split form: the Trainer would have to pick its epoch on eval, the split that gates
        raise ConfigError(f"{field}.{VALIDATION}", f"is required: the Trainer early-stops on validation so that eval, "
                                                   f"which blesses the model, is never used to select it; add {add_validation}")
    if set(mapping) != set(SPLITS):
        raise ConfigError(field, f"must name exactly the splits {list(SPLITS)}, got {sorted(mapping)}")


# TFX ExampleGen's span placeholders (tfx/components/example_gen/utils.py): a path holding one names
# a new span (a day's data) per value; the date form {YYYY}-{MM}-{DD} is a span number too.
SPAN_PLACEHOLDERS = ("{SPAN}", "{YYYY}", "{MM}", "{DD}")
# The newest span against the one before it, where a user sets no threshold of their own: the
# largest L-infinity distance (categorical) or Jensen-Shannon divergence (numeric) a normal day of
# `embedpipe data synthetic --spans` stays under and a broken day does not (bench/RESULTS.md,
# "Daily retraining").
DEFAULT_DRIFT_THRESHOLD = 0.3


DEFAULT_SKEW_THRESHOLD = 0.3


class WindowConfig(Section):
    """Which spans Transform and the Trainer read, when data.path names spans: the newest ``spans``,
    or the fixed range ``start``..``end``."""

    spans: PositiveInt = 1
    """The newest N spans (1: the newest only)."""
    start: Count | None = None
    """With end: a fixed range of span numbers instead of the newest N."""
    end: Count | None = None

    @model_validator(mode="after")
    def _newest_or_range(self) -> WindowConfig:
        if (self.start is None) != (self.end is None):
            raise ConfigError("start" if self.start is None else "end", "a fixed range needs both start and end")
        if self.start is not None and "spans" in self.model_fields_set:
            raise ConfigError("spans", "give either spans (the newest N) or start and end (a fixed range), not both")
        if self.start is not None and self.end < self.start:
            raise ConfigError("end", f"must be >= start ({self.start}), got {self.end}")
        return self

    @property
    def is_fixed(self) -> bool:
        """A fixed range of spans, not the newest N."""
        return self.start is not None


class DriftConfig(Section):
    """The newest span's statistics against the previous span's (TFDV's drift comparators): past a
    threshold the run stops before Transform, or warns (data.on_drift)."""

    default: Number = Field(DEFAULT_DRIFT_THRESHOLD, gt=0)
    """The threshold of every feature not named in ``features``."""
    features: dict[StrictStr, Annotated[Number, Field(gt=0)]] = Field(default_factory=dict)
    """feature -> its own threshold: L-infinity distance for a string feature, Jensen-Shannon divergence for an int one."""

    def threshold(self, feature: str) -> float:
        """The threshold that applies to ``feature``."""
        return self.features.get(feature, self.default)


class SkewConfig(DriftConfig):
    """Served traffic's statistics against the training data's (TFDV's skew comparators, `embedpipe
    monitor`): L-infinity distance for a string feature, Jensen-Shannon divergence for an int one.
    The default holds where a user sets none: 1,000 requests drawn from the training data pass (the
    sampling noise on a feature with hundreds of values), a feature collapsed onto one value fails
    (tests/test_monitor.py)."""

    default: Number = Field(DEFAULT_SKEW_THRESHOLD, gt=0)


class MonitoringConfig(Section):
    """`embedpipe monitor`: the served model's logged requests against its training data."""

    skew: SkewConfig = SkewConfig()


class DataConfig(Section):
    """Where raw examples come from and how they are split into train, validation and eval."""

    format: DataFormat
    path: PathStr
    """A file, a glob, or a directory (of split files with split.files); with {SPAN} (or
    {YYYY}-{MM}-{DD}) in it, one span per value, e.g. data/span-{SPAN}/ (ExampleGen ingests the newest)."""
    list_delimiter: StrictStr = "|"
    """Separates the values of a sequence cell in CSV (and in JSONL strings); one character."""
    split: SplitConfig = SplitConfig(hash_buckets=DEFAULT_HASH_BUCKETS)
    on_bad_record: BadRecordPolicy = "fail"
    """fail: stop at the first bad record; skip: write it to the rejects file beside the examples."""
    max_bad_fraction: Number = Field(0.01, ge=0, le=1)
    """With skip: the run fails when more records than this fraction are rejected."""
    window: WindowConfig = WindowConfig()
    """With spans in data.path: which spans Transform and the Trainer read."""
    drift: DriftConfig = DriftConfig()
    """With spans in data.path: how far the newest span may drift from the previous one."""
    on_drift: Literal["fail", "warn"] = "fail"
    """fail: stop the run before Transform, naming the feature; warn: say so in the summary and go on."""
    key: StrictStr | None = None
    """A column that identifies a request (e.g. request_id): clients pass it in the tf.Example, the
    model never reads it, and `embedpipe data from-logs` joins logged requests with labels by it."""

    @property
    def has_spans(self) -> bool:
        """data.path names spans ({SPAN} or {YYYY}-{MM}-{DD})."""
        return any(p in self.path for p in SPAN_PLACEHOLDERS)

    @model_validator(mode="after")
    def _window_needs_spans(self) -> DataConfig:
        if not self.has_spans and (self.window.spans > 1 or self.window.is_fixed):
            raise ConfigError("window", f"reads several spans, but data.path names none: put {{SPAN}} (or {{YYYY}}-{{MM}}-{{DD}}) "
                                        f"in it, e.g. data/span-{{SPAN}}/; got {self.path!r}")
        if "{SPAN}" in self.path and any(p in self.path for p in SPAN_PLACEHOLDERS[1:]):
            raise ConfigError("path", "names a span twice: use {SPAN} or the date {YYYY}-{MM}-{DD}, not both")
        return self

    @field_validator("list_delimiter")
    @classmethod
    def _one_character(cls, delimiter: str) -> str:
        if len(delimiter) != 1:
            raise ConfigError("", f"must be one character, got {delimiter!r}")
        return delimiter


class VocabularyConfig(Section):
    """How Transform builds one feature's vocabulary."""

    top_k: PositiveInt | None = None
    frequency_threshold: PositiveInt = 1
    num_oov_buckets: Count = 1


class FeatureConfig(Section):
    """One categorical input: its raw form, vocabulary, padding and embedding."""

    name: StrictStr
    kind: FeatureKind
    dtype: Dtype
    embedding_dim: PositiveInt
    vocabulary: VocabularyConfig = VocabularyConfig()
    max_length: PositiveInt = 1
    """Required for a sequence; an id always has length 1."""
    truncate: Truncation = "keep_last"
    """Sequences only: which end of a long sequence is kept."""
    padding: Padding = "end"
    """Sequences only: where the 0s go; start right-aligns the tokens (Keras pad_sequences' "pre")."""
    mask_zero: StrictBool = True
    pooling: Pooling | None = None
    """Per-feature override of model.pooling (pooled model)."""
    share_embedding_with: StrictStr | None = None
    query: StrictStr | None = None
    """target_attention: the id feature whose embedding is the query (overrides model.query)."""

    @field_validator("name")
    @classmethod
    def _identifier(cls, name: str) -> str:
        if not name.isidentifier():
            raise ConfigError("", f"{name!r} must be a valid identifier (letters, digits, _)")
        if name == LABEL_KEY:
            raise ConfigError("", f"{LABEL_KEY!r} is reserved for the transformed label")
        return name

    @model_validator(mode="before")
    @classmethod
    def _layout_by_kind(cls, raw: Any) -> Any:
        """A sequence names its max_length; an id has one value, so no length, truncation or padding."""
        if not isinstance(raw, Mapping) or raw.get("kind") not in FEATURE_KINDS:
            return raw
        if raw["kind"] == "sequence" and raw.get("max_length") is None:
            raise ConfigError("max_length", "is required")
        if raw["kind"] == "id":
            if raw.get("max_length") not in (None, 1):
                raise ConfigError("max_length", "an id feature has exactly one value; use kind: sequence for lists")
            if raw.get("truncate") is not None:
                raise ConfigError("truncate", "only sequence features are truncated")
            if raw.get("padding") is not None:
                raise ConfigError("padding", "only sequence features are padded")
        return raw

    @model_serializer(mode="wrap")
    def _without_sequence_fields_for_ids(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        data = handler(self)
        if self.kind == "id":  # what an id may not set, so that a dumped config loads again
            data.pop("truncate", None)
            data.pop("padding", None)
        return data

    @property
    def length(self) -> int:
        """Length of the transformed, padded id tensor."""
        return self.max_length if self.kind == "sequence" else 1

    @property
    def vocabulary_owner(self) -> str:
        """Name of the feature whose vocabulary (and embedding table) this feature uses."""
        return self.share_embedding_with or self.name


class LabelConfig(Section):
    """The raw label column and the rule that turns its value into 1 (else 0)."""

    name: StrictStr
    dtype: LabelDtype = "float"
    positive_if: StrictStr = "== 1"
    """A comparison with one value: '>= 4', '== 1', "== 'buy'" (strings: == and != only)."""

    @model_validator(mode="after")
    def _rule_parses(self) -> LabelConfig:
        parse_label_rule(self.positive_if, self.dtype, "positive_if")
        return self

    @property
    def rule(self) -> tuple[str, Any]:
        """The rule as (operator symbol, typed operand)."""
        return parse_label_rule(self.positive_if, self.dtype, "label.positive_if")


class PreprocessingConfig(Section):
    """What Transform reads: the features and the label, nothing else, so that changing a training
    setting keeps Transform's cached output."""

    features: tuple[FeatureConfig, ...]
    label: LabelConfig

    def vocabulary_owners(self) -> tuple[FeatureConfig, ...]:
        """The features that own a vocabulary (and an embedding table): every one that shares none."""
        return tuple(f for f in self.features if f.vocabulary_owner == f.name)

    def vocabulary_users(self, owner: FeatureConfig) -> tuple[FeatureConfig, ...]:
        """``owner`` and the features sharing its vocabulary."""
        return tuple(f for f in self.features if f.vocabulary_owner == owner.name)


class AttentionConfig(Section):
    """One more DIN attention vector in the concatenation (``model.attention``): the steps of ``keys``
    are scored against ``query``'s embedding and ``values`` (aligned step by step; default ``keys``)
    are summed with those weights, e.g. ``{query: target, keys: history, values: history_ratings}``:
    how this user rated the movies most like this one."""

    query: StrictStr
    keys: StrictStr
    values: StrictStr | None = None

    @property
    def values_feature(self) -> str:
        """The sequence whose embeddings are pooled."""
        return self.values or self.keys


class RnnConfig(Section):
    """The recurrent layer of lstm / gru pooling and of concat_rnn."""

    cell: RnnCell = "lstm"
    units: PositiveInt = 32


class ModelConfig(Section):
    """Which multi-embedding architecture the Trainer builds."""

    type: ModelType = "pooled"
    pooling: Pooling = "mean"
    rnn: RnnConfig = RnnConfig()
    hidden_units: tuple[PositiveInt, ...] = (64, 32)
    concat: tuple[StrictStr, ...] | None = None
    """concat_* variants: the features joined on the last axis (default: every sequence)."""
    dropout: Number = Field(0.0, ge=0, lt=1)
    l2: Number = Field(0.0, ge=0)
    """L2 on the Dense kernels and cross layers."""
    embedding_l2: Number = Field(0.0, ge=0)
    """L2 on every embedding table (the whole table, Embedding(embeddings_regularizer=...))."""
    query: StrictStr | None = None
    """target_attention: default query (an id feature) of the features pooled with it."""
    cross_layers: Count = 0
    """DCN-v2 cross layers over the concatenated feature vector, before the hidden layers."""
    cross_projection_dim: PositiveInt | None = None
    """Low-rank cross layers (W = U V, rank r); none: full rank."""
    attention: tuple[AttentionConfig, ...] = ()
    """Extra DIN attention vectors, besides each feature's own encoding."""

    @model_validator(mode="after")
    def _rank_needs_cross_layers(self) -> ModelConfig:
        if self.cross_projection_dim is not None and not self.cross_layers:
            raise ConfigError("cross_projection_dim", "is the rank of the cross layers; set model.cross_layers >= 1 too")
        return self


class EarlyStoppingConfig(Section):
    """Keras EarlyStopping on the validation split, restoring the best epoch's weights."""

    patience: Count | None = 2
    """Epochs without improvement before training stops; none: no early stopping."""
    monitor: EarlyStoppingMonitor = "val_auc"
    min_delta: Annotated[Number, Field(ge=0)] = 0.0
    """The least change of ``monitor`` that counts as an improvement (Keras' EarlyStopping
    min_delta). A warm-started model starts near its best and then gains a little each epoch; with
    0.001 it stops within a few epochs where a model from scratch still gains more
    (bench/RESULTS.md, "Daily retraining")."""


class TrainingConfig(Section):
    """Optimisation settings for the Trainer."""

    batch_size: PositiveInt = 256
    epochs: PositiveInt = 3
    steps_per_epoch: PositiveInt | None = None
    learning_rate: Number = Field(1e-3, gt=0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    seed: StrictInt = 0
    cache_mb: Count = 1024
    """The train (then validation) split's parsed tensors stay in memory after the first epoch when
    they fit in this many MB, instead of being read and parsed every epoch; 0 = never."""
    input: TrainerInput = "raw"
    """raw: the Trainer applies Transform's graph to ExampleGen's examples, and Transform writes no
    splits (measured faster:
    bench/RESULTS.md, "Trainer input: files against memory, raw against transformed");
    transformed pays off where the splits do not fit cache_mb, or where Transform runs on a cluster."""
    warm_start: StrictBool = False
    """Start from the last blessed model (the Trainer's base_model): embedding rows move with their
    tokens into the new vocabulary, new tokens start fresh, other layers are copied. A model whose
    shape changed (a feature added or dropped, an embedding_dim changed) trains from scratch, and
    the run says which feature and why (models/warm_start.py)."""

    @property
    def reads_raw_examples(self) -> bool:
        """The Trainer reads ExampleGen's examples and applies Transform's graph itself (``input: raw``)."""
        return self.input == "raw"


class EvaluationConfig(Section):
    """TFMA metrics and the thresholds that decide whether a model is blessed."""

    metrics: tuple[TfmaMetric, ...] = ("ExampleCount", "AUC", "BinaryAccuracy", "Precision", "Recall", "Calibration")
    value_thresholds: dict[StrictStr, dict[Bound, Number]] = Field(default_factory=lambda: {"AUC": {"lower_bound": 0.6}})
    """metric -> {lower_bound: x} and/or {upper_bound: y}, on the overall slice."""
    no_regression: dict[StrictStr, Annotated[Number, Field(ge=0)]] = Field(default_factory=lambda: {"AUC": 0.0})
    """metric -> largest allowed drop against the last blessed model (0 = no regression at all)."""
    slices: tuple[tuple[StrictStr, ...], ...] = ()
    """Raw feature names per slice, e.g. [[target_categories], [user, target]]: reported besides the
    overall slice, never gated (thresholds apply to the overall slice only)."""

    @field_validator("slices", mode="before")
    @classmethod
    def _slices(cls, raw: Any) -> Any:
        """Each slice a non-empty list of distinct names, no slice twice (the names are checked
        against the features in ``_check_cross_fields``)."""
        if not isinstance(raw, (list, tuple)):
            return raw
        seen: list[tuple[str, ...]] = []
        for i, names in enumerate(raw):
            if not isinstance(names, (list, tuple)) or not names:
                raise ConfigError(f"[{i}]", f"must be a non-empty list of feature names, e.g. [target_categories], got {names!r}")
            for j, name in enumerate(names):
                if not isinstance(name, str):
                    raise ConfigError(f"[{i}][{j}]", f"must be a feature name, got {name!r}")
                if list(names).index(name) != j:
                    raise ConfigError(f"[{i}][{j}]", f"{name!r} is already in this slice")
            key = tuple(sorted(names))  # TFMA slices on a set of features: [a, b] and [b, a] are one slice
            if key in seen:
                raise ConfigError(f"[{i}]", f"{list(names)} is already a slice")
            seen.append(key)
        return raw

    @model_validator(mode="after")
    def _thresholds_name_listed_metrics(self) -> EvaluationConfig:
        for metric, bounds in self.value_thresholds.items():
            if metric not in self.metrics:
                raise ConfigError(f"value_thresholds.{metric}", f"{metric!r} is not in evaluation.metrics {list(self.metrics)}")
            if not bounds:
                raise ConfigError(f"value_thresholds.{metric}", "must be a mapping with lower_bound and/or upper_bound")
        for metric in self.no_regression:
            if metric not in self.metrics:
                raise ConfigError(f"no_regression.{metric}", f"{metric!r} is not in evaluation.metrics {list(self.metrics)}")
            if metric not in HIGHER_IS_BETTER + LOWER_IS_BETTER:
                raise ConfigError(f"no_regression.{metric}",
                                  f"{metric!r} has no better direction; one of {list(HIGHER_IS_BETTER + LOWER_IS_BETTER)}")
        if not self.value_thresholds:
            raise ConfigError("value_thresholds", "needs at least one threshold: without one TFMA never blesses a model")
        return self


class PushConfig(Section):
    """Where blessed models go: ``<base_directory>/<model_name>/<version>/``."""

    base_directory: PathStr
    """Default: runs/<pipeline.name>/serving beside the config file."""
    model_name: StrictStr
    """Default: pipeline.name."""

    @property
    def model_directory(self) -> str:
        """The directory TF Serving's ``--model_base_path`` points at."""
        return os.path.join(self.base_directory, self.model_name)


class BeamConfig(Section):
    """The Beam runner of every Beam-based component (embedconfig/beam_profiles.py lists each
    runner's options); typed until the runner gets them as flags (``pipeline_args``)."""

    runner: Literal[RUNNERS] = "direct"  # type: ignore[valid-type]
    options: dict[StrictStr, Union[StrictStr, StrictInt, Number, StrictBool, None]] = Field(default_factory=dict)
    """The runner's options, e.g. {direct_running_mode: auto} or Dataflow's project, region, temp_location."""
    args: tuple[StrictStr, ...] = ()
    """More Beam flags as they are, e.g. ["--direct_num_workers=4"]."""

    @model_validator(mode="after")
    def _options_of_the_runner(self) -> BeamConfig:
        try:
            filled = beam_args_for(self.runner, self.options).options
        except ValueError as e:
            field, _, message = str(e).partition(": ")
            raise ConfigError(field.removeprefix("beam."), message) from e
        object.__setattr__(self, "options", filled)  # defaults filled in, so a dumped config says them
        return self

    def pipeline_args(self) -> tuple[str, ...]:
        """The ``beam_pipeline_args`` flags (``--runner=...`` first)."""
        profile = beam_args_for(self.runner, self.options)
        flags = list(profile.flags)
        if self.runner == "direct" and any(a.startswith("--direct_") for a in self.args):
            flags = flags[:1]  # explicit direct_* args replace the direct profile's options
        return tuple(flags) + self.args

    def with_options(self, **options: Any) -> BeamConfig:
        """A copy with ``options`` set (``None`` removes one)."""
        merged = {k: v for k, v in {**self.options, **options}.items() if v is not None}
        return replace(self, options=merged)


def _named_defaults(raw: Any) -> Any:
    """The defaults that follow from ``pipeline.name``: where its artifacts, metadata and models go."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("pipeline"), Mapping) or not isinstance(raw["pipeline"].get("name"), str):
        return raw
    name = raw["pipeline"]["name"]
    raw = dict(raw)
    raw["pipeline"] = {"root": f"runs/{name}/root", "metadata_path": f"runs/{name}/metadata.sqlite", **_given(raw["pipeline"])}
    if isinstance(raw.get("push", {}), Mapping):
        raw["push"] = {"base_directory": f"runs/{name}/serving", "model_name": name, **_given(raw.get("push") or {})}
    return raw


def _given(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The keys given a value (YAML's ``key:`` with nothing after it is None: not given)."""
    return {k: v for k, v in mapping.items() if v is not None}


with warnings.catch_warnings():
    # The YAML key is `schema`; it shadows only pydantic's deprecated BaseModel.schema() (use
    # model_json_schema()), so an instance's `schema` is the field.
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class PipelineConfig(Section):
        """The whole validated config."""

        pipeline: RunConfig
        data: DataConfig
        schema: PathStr
        """The curated schema (a Schema text proto; `embedpipe schema infer` writes a first one)."""
        features: tuple[FeatureConfig, ...]
        label: LabelConfig
        model: ModelConfig = ModelConfig()
        training: TrainingConfig = TrainingConfig()
        evaluation: EvaluationConfig = EvaluationConfig()
        push: PushConfig
        beam: BeamConfig = BeamConfig()
        monitoring: MonitoringConfig = MonitoringConfig()

        _source: str = PrivateAttr("<dict>")

        _defaults = model_validator(mode="before")(classmethod(lambda cls, raw: _named_defaults(raw)))

        @field_validator("features", mode="before")
        @classmethod
        def _at_least_one(cls, features: Any) -> Any:
            if isinstance(features, (list, tuple)) and not features:
                raise ConfigError("", "needs at least one feature")
            return features

        @model_validator(mode="after")
        def _cross_fields(self) -> PipelineConfig:
            _check_cross_fields(self)
            return self

        def __eq__(self, other: object) -> bool:
            """Equal fields are the same config, wherever each was read from."""
            return isinstance(other, PipelineConfig) and self.__dict__ == other.__dict__

        __hash__ = Section.__hash__

        @property
        def source(self) -> str:
            """Where the config was read from (a file's path, or <dict>)."""
            return self._source

        def feature(self, name: str) -> FeatureConfig:
            """The feature called ``name``."""
            for f in self.features:
                if f.name == name:
                    return f
            raise KeyError(name)

        @property
        def preprocessing(self) -> PreprocessingConfig:
            """The part of the config Transform reads."""
            return PreprocessingConfig(features=self.features, label=self.label)

        def with_data_path(self, path: str) -> PipelineConfig:
            """A copy reading data from ``path`` (a file, a glob or a directory of split files)."""
            return replace(self, data=replace(self.data, path=path))


# --------------------------------------------------------------------------- loading and showing


def parse_config(raw: Any, base_dir: Path | str | None = None, source: str = "<dict>") -> PipelineConfig:
    """The one loader: validate a mapping (from YAML, or the JSON a component receives) into a
    :class:`PipelineConfig`; ``base_dir`` resolves relative paths. Raises :class:`ConfigError`."""
    if not isinstance(raw, Mapping):
        raise ConfigError("<root>", f"must be a mapping, got {type(raw).__name__}")
    try:
        config = PipelineConfig.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as e:
        raise config_error_from(e, PipelineConfig, raw) from None
    config._source = source
    return config


# The keys of the config.json the Trainer writes beside every model (models/trainer.py write_model_info).
MODEL_CONFIG_KEYS = {"config", "vocabulary_sizes"}


def load_config(path: str | os.PathLike[str], check_schema: bool = True) -> PipelineConfig:
    """Read and validate a YAML config file, or the ``config.json`` inside a model
    (``assets.extra/embedpipe/config.json``, the config its run used); a URI (gs://, s3://) is read
    through tf.io.gfile. Relative paths resolve against the file's directory. ``check_schema``: also
    check it against its schema file (not for ``schema infer``, which writes it)."""
    text, base_dir = _read_config_file(str(path))
    try:
        raw = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"{path} is not valid YAML: {e}") from e
    if isinstance(raw, Mapping) and set(raw) == MODEL_CONFIG_KEYS:
        raw = raw["config"]
    config = parse_config(raw, base_dir=base_dir, source=str(path))
    if check_schema:
        check_against_schema(config)
    return config


# Where a component's part of the config sits in its custom_config (Transform, the Trainer, ExampleGen).
COMPONENT_CONFIG_KEY = "embedpipe"


def component_config(section: Section) -> dict[str, Any]:
    """What a component's ``custom_config`` carries: its part of the config (the whole config for
    the Trainer, ``preprocessing`` for Transform, the reader settings for ExampleGen) as JSON types."""
    return {COMPONENT_CONFIG_KEY: config_as_dict(section)}


def from_component_config(custom_config: Mapping[str, Any], section: type[S]) -> S:
    """The typed section back from ``component_config()``'s output, validated like a config file."""
    if COMPONENT_CONFIG_KEY not in (custom_config or {}):
        raise ConfigError("<custom_config>", f"has no {COMPONENT_CONFIG_KEY!r} key: build it with embedconfig.config.component_config()")
    raw = custom_config[COMPONENT_CONFIG_KEY]
    if section is PipelineConfig:
        return parse_config(raw, source="custom_config")  # type: ignore[return-value]
    try:
        return section.model_validate(raw)
    except ValidationError as e:
        raise config_error_from(e, section, raw) from None


def _read_config_file(path: str) -> tuple[str, str | None]:
    """The file's text and the directory its relative paths resolve against (None for a URI)."""
    if "://" in path:  # TensorFlow only where a bucket is read: a local config loads without it
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            raise ConfigError("<file>", f"no config file at {path}")
        with tf.io.gfile.GFile(path) as f:
            return f.read(), None
    local = Path(path)
    if not local.is_file():
        raise ConfigError("<file>", f"no config file at {local}")
    return local.read_text(), str(local.resolve().parent)


def config_as_dict(config: Section) -> dict[str, Any]:
    """The config (or a section) as plain JSON types, in the YAML's shape, every default filled in:
    ``parse_config`` of it gives the same config back."""
    return config.model_dump(mode="json")


def config_as_yaml(config: PipelineConfig) -> str:
    """``embedpipe config show``: the resolved config as YAML, keys in declaration order."""
    return yaml.safe_dump(config_as_dict(config), sort_keys=False, default_flow_style=False, width=120)


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (``embedpipe config schema``), for editors' YAML plugins."""
    schema = PipelineConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "embedpipe pipeline config"
    # pipeline.root, .metadata_path and push.* have defaults that follow from pipeline.name
    for section, fields in (("RunConfig", ("root", "metadata_path")), ("PushConfig", ("base_directory", "model_name"))):
        definition = schema["$defs"][section]
        definition["required"] = [f for f in definition.get("required", []) if f not in fields]
    schema["required"] = [f for f in schema["required"] if f != "push"]
    # a sequence needs max_length (an id may not set it), which pydantic's schema cannot say alone
    schema["$defs"]["FeatureConfig"]["if"] = {"properties": {"kind": {"const": "sequence"}}}
    schema["$defs"]["FeatureConfig"]["then"] = {"required": ["max_length"]}
    return schema


def check_against_schema(config: PipelineConfig) -> None:
    """The schema file exists, parses, and declares every configured feature and the label.

    Checked when a config file loads, so a missing schema or a misspelt feature is a config error
    at once (exit 2) instead of a traceback after 48 s or a KeyError in Transform.
    """
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if not tf.io.gfile.exists(config.schema):
        raise ConfigError("schema", f"no schema file at {config.schema} (write one with `embedpipe schema infer`)")
    schema = schema_pb2.Schema()
    try:
        with tf.io.gfile.GFile(config.schema) as f:
            text_format.Parse(f.read(), schema)
    except text_format.ParseError as e:
        raise ConfigError("schema", f"{config.schema} is not a Schema text proto: {e}") from e
    in_schema = {f.name: f for f in schema.feature}
    for i, feature in enumerate(config.features):
        if feature.name not in in_schema:
            raise ConfigError(f"features[{i}].name", f"'{feature.name}' is not a feature of the schema {config.schema}")
        _check_schema_type(f"features[{i}].dtype", feature.name, feature.dtype, in_schema[feature.name], config.schema)
        _check_schema_shape(i, feature, in_schema[feature.name], config.schema)
    if config.label.name not in in_schema:
        raise ConfigError("label.name", f"'{config.label.name}' is not a feature of the schema {config.schema}")
    _check_schema_type("label.dtype", config.label.name, config.label.dtype, in_schema[config.label.name], config.schema)


# The schema's FeatureType each config dtype is read as (records/raw_records.py writes int64_list,
# bytes_list, float_list): a mismatch would only surface at SchemaGate, after ExampleGen ran.
_SCHEMA_TYPE_OF_DTYPE = {"int": "INT", "string": "BYTES", "float": "FLOAT"}


def _check_schema_type(field: str, name: str, dtype: str, entry: Any, schema_path: str) -> None:
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema_type = schema_pb2.FeatureType.Name(entry.type)
    if schema_type != _SCHEMA_TYPE_OF_DTYPE[dtype]:
        agrees = [d for d, t in _SCHEMA_TYPE_OF_DTYPE.items() if t == schema_type]
        fits = f" (dtype {agrees[0]} reads it)" if agrees else ""
        raise ConfigError(field, f"is {dtype}, but the schema {schema_path} has '{name}' as {schema_type}{fits}: make the two agree")


def _check_schema_shape(i: int, feature: FeatureConfig, entry: Any, schema_path: str) -> None:
    """An id needs ``shape [1]`` in the schema and a sequence none: the exported model's raw-tensor
    signature feeds ids dense and sequences sparse, so a schema that says otherwise trained for
    minutes and then failed at export with "Shapes (None, 2) and (None, 1) are incompatible"."""
    dims = [d.size for d in entry.shape.dim] if entry.HasField("shape") else None
    if feature.kind == "id" and dims != [1]:
        raise ConfigError(f"features[{i}].kind", f"'{feature.name}' is an id feature, but the schema {schema_path} does not give it "
                          "exactly one value per example: its entry needs `shape { dim { size: 1 } }` (as `embedpipe schema infer` writes)")
    if feature.kind == "sequence" and dims is not None:
        raise ConfigError(f"features[{i}].kind", f"'{feature.name}' is a sequence feature, but the schema {schema_path} gives it a fixed "
                          f"shape {dims}: remove the `shape` from its entry (sequences are variable-length, as `embedpipe schema infer` writes)")


# --------------------------------------------------------------------------- the label rule


def parse_label_rule(rule: str, dtype: str, field: str) -> tuple[str, Any]:
    """Parse ``">= 4"`` into (">=", 4.0), typed by the label's dtype."""
    text = rule.strip()
    for symbol in sorted(LABEL_OPERATORS, key=len, reverse=True):
        if text.startswith(symbol):
            operand = text[len(symbol):].strip()
            break
    else:
        raise ConfigError(field, f"{rule!r} must start with one of {list(LABEL_OPERATORS)}, e.g. '>= 4'")
    if not operand:
        raise ConfigError(field, f"{rule!r} has no value after {symbol!r}")
    try:
        value: Any = {"int": int, "float": float, "string": str}[dtype](operand.strip("'\""))
    except ValueError as e:
        raise ConfigError(field, f"{operand!r} is not a {dtype} (label.dtype)") from e
    if dtype == "string" and symbol not in ("==", "!="):
        raise ConfigError(field, f"a string label only allows == or !=, got {symbol!r}")
    return symbol, value


def label_is_positive(value: Any, label: LabelConfig) -> bool:
    """Apply the label rule to one raw value (used by tests and the data tools)."""
    symbol, operand = label.rule
    return bool(LABEL_OPERATORS[symbol][0](value, operand))


# --------------------------------------------------------------------------- checks across sections


def _check_cross_fields(config: PipelineConfig) -> None:
    """Checks that need several sections at once."""
    names = [f.name for f in config.features]
    for i, f in enumerate(config.features):
        if names.index(f.name) != i:
            raise ConfigError(f"features[{i}].name", f"{f.name!r} is already used by features[{names.index(f.name)}]")
        if f.name == config.label.name:
            raise ConfigError(f"features[{i}].name", f"{f.name!r} is the label column (label.name)")
    if config.data.key is not None and config.data.key in names + [config.label.name]:
        raise ConfigError("data.key", f"{config.data.key!r} is a feature or the label: the key is passed through by clients, "
                          "never fed to the model")
    for name in config.monitoring.skew.features:
        if name not in names:
            raise ConfigError(f"monitoring.skew.features.{name}", f"{name!r} is not a feature; features: {names}")
    for i, f in enumerate(config.features):
        if f.share_embedding_with is None:
            continue
        field = f"features[{i}].share_embedding_with"
        if f.share_embedding_with not in names:
            raise ConfigError(field, f"{f.share_embedding_with!r} is not a feature; features: {names}")
        owner = config.feature(f.share_embedding_with)
        if owner.share_embedding_with is not None:
            raise ConfigError(field, f"{owner.name!r} itself shares {owner.share_embedding_with!r}; point at {owner.share_embedding_with!r} directly")
        if owner.name == f.name:
            raise ConfigError(field, "a feature cannot share with itself")
        if owner.dtype != f.dtype:
            raise ConfigError(field, f"{f.name!r} is dtype {f.dtype} but {owner.name!r} is dtype {owner.dtype}: one vocabulary cannot hold both")
        if owner.embedding_dim != f.embedding_dim:
            raise ConfigError(f"features[{i}].embedding_dim", f"{f.name!r} shares {owner.name!r}'s table, so embedding_dim must be {owner.embedding_dim}, got {f.embedding_dim}")
        if f.vocabulary not in (VocabularyConfig(), owner.vocabulary):
            raise ConfigError(f"features[{i}].vocabulary", f"{f.name!r} uses {owner.name!r}'s vocabulary; set vocabulary on {owner.name!r} only")
    _check_slice_names(config)
    for name in config.data.drift.features:
        if name not in names + [config.label.name]:
            raise ConfigError(f"data.drift.features.{name}", f"{name!r} is not a feature or the label; features: {names}")
    check_model_shapes(config)


def _check_slice_names(config: PipelineConfig) -> None:
    """Slices name raw features. Not the label: each of its values holds one class only, where AUC
    is undefined (TFMA reports 0), so such a slice would only mislead."""
    for i, slice_names in enumerate(config.evaluation.slices):
        for j, name in enumerate(slice_names):
            field = f"evaluation.slices[{i}][{j}]"
            if name == config.label.name:
                raise ConfigError(field, f"{name!r} is the label column: each of its values holds one class, where AUC is undefined")
            if name not in [f.name for f in config.features]:
                raise ConfigError(field, f"{name!r} is not a feature; features: {[f.name for f in config.features]}")
