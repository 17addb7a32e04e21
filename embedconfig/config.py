"""The YAML config that drives a run: load it once, validate it once, fail with the field's name.

Every other module receives a validated :class:`PipelineConfig` (or its JSON-safe ``to_dict()``
form inside TFX components) and never re-checks it. Relative paths in a config file resolve
against the directory that holds the file.
"""

from __future__ import annotations

import dataclasses
import json
import operator
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from embedconfig.beam_profiles import RUNNERS, beam_args_for
from embedconfig.errors import ConfigError
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

DATA_FORMATS = ("jsonl", "csv", "tfrecord")
BAD_RECORD_POLICIES = ("fail", "skip")
FEATURE_KINDS = ("sequence", "id")
DTYPES = ("string", "int")
TRUNCATIONS = ("keep_last", "keep_first")
PADDINGS = ("end", "start")
MODEL_TYPES = ("pooled", "concat_flatten", "concat_rnn")
POOLINGS = ("mean", "sum", "max", "lstm", "gru", "attention", "target_attention")
RNN_CELLS = ("lstm", "gru")
# What the Trainer reads (training.input). raw: ExampleGen's examples, Transform's graph applied in
# the Trainer's tf.data pipeline as the serving signatures apply it, and Transform writes no
# transformed examples (TFX's Transform(materialize=False)). transformed: Transform writes every
# split's transformed examples and the Trainer parses them (TFX's default).
TRAINER_INPUTS = ("raw", "transformed")
TFMA_METRICS = (
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
)
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


# --------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class VocabularyConfig:
    """How Transform builds one feature's vocabulary."""

    top_k: int | None = None
    frequency_threshold: int = 1
    num_oov_buckets: int = 1


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """One categorical input: its raw form, vocabulary, padding and embedding."""

    name: str
    kind: str  # sequence | id
    dtype: str  # string | int
    embedding_dim: int
    vocabulary: VocabularyConfig = VocabularyConfig()
    max_length: int = 1  # ids always have length 1
    truncate: str = "keep_last"
    padding: str = "end"  # where the 0s go; "start" right-aligns the tokens (Keras pad_sequences' "pre")
    mask_zero: bool = True
    pooling: str | None = None  # per-feature override of model.pooling (pooled model)
    share_embedding_with: str | None = None
    query: str | None = None  # target_attention: the id feature whose embedding is the query (overrides model.query)

    @property
    def length(self) -> int:
        """Length of the transformed, padded id tensor."""
        return self.max_length if self.kind == "sequence" else 1

    @property
    def vocabulary_owner(self) -> str:
        """Name of the feature whose vocabulary (and embedding table) this feature uses."""
        return self.share_embedding_with or self.name


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """The raw label column and the rule that turns its value into 1 (else 0)."""

    name: str
    dtype: str = "float"  # int | float | string
    positive_if: str = "== 1"

    @property
    def rule(self) -> tuple[str, Any]:
        """The rule as (operator symbol, typed operand)."""
        return parse_label_rule(self.positive_if, self.dtype, "label.positive_if")


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
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

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form Transform's ``custom_config`` carries."""
        return _json_safe(self)

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> PreprocessingConfig:
        """Rebuild from ``to_dict()`` (inside Transform)."""
        return PreprocessingConfig(features=tuple(_feature_from_dict(f) for f in raw["features"]), label=LabelConfig(**raw["label"]))


def _json_safe(section: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON types (tuples become lists), as TFX's custom_config carries it."""
    return json.loads(json.dumps(dataclasses.asdict(section)))


def _feature_from_dict(raw: Mapping[str, Any]) -> FeatureConfig:
    return FeatureConfig(**{**raw, "vocabulary": VocabularyConfig(**raw["vocabulary"])})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where raw examples come from and how they are split into train, validation and eval."""

    format: str
    path: str
    list_delimiter: str = "|"
    hash_buckets: Mapping[str, int] | None = None  # {"train": 7, "validation": 1, "eval": 2}
    split_files: Mapping[str, str] | None = None  # {"train": "train*", "validation": "validation*", "eval": "eval*"}
    on_bad_record: str = "fail"  # fail: stop at the first bad record | skip: reject it to the rejects file
    max_bad_fraction: float = 0.01  # with skip: the run fails when more records than this are rejected


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """One more DIN attention vector in the concatenation (``model.attention``): the steps of ``keys``
    are scored against ``query``'s embedding and ``values`` (aligned step by step; default ``keys``)
    are summed with those weights, e.g. ``{query: target, keys: history, values: history_ratings}``:
    how this user rated the movies most like this one."""

    query: str
    keys: str
    values: str | None = None

    @property
    def values_feature(self) -> str:
        """The sequence whose embeddings are pooled."""
        return self.values or self.keys


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which multi-embedding architecture the Trainer builds."""

    type: str = "pooled"
    pooling: str = "mean"
    rnn_cell: str = "lstm"
    rnn_units: int = 32
    hidden_units: tuple[int, ...] = (64, 32)
    concat: tuple[str, ...] | None = None  # concat_* variants: features joined on the last axis
    dropout: float = 0.0
    l2: float = 0.0  # L2 on the Dense kernels and cross layers
    embedding_l2: float = 0.0  # L2 on every embedding table (whole table, Embedding(embeddings_regularizer=...))
    query: str | None = None  # target_attention: default query (an id feature) of the features pooled with it
    cross_layers: int = 0  # DCN-v2 cross layers over the concatenated feature vector, before the hidden layers
    cross_projection_dim: int | None = None  # low-rank cross layers (W = U V, rank r); None: full rank
    attention: tuple[AttentionConfig, ...] = ()  # extra DIN attention vectors, besides each feature's own encoding


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings for the Trainer."""

    batch_size: int = 256
    epochs: int = 3
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    early_stopping_patience: int | None = 2
    early_stopping_monitor: str = "val_auc"
    seed: int = 0
    # The Trainer keeps the train (then validation) split's parsed tensors in memory after the first
    # epoch when they fit in this many MB, instead of reading and parsing the files every epoch; 0 = never.
    cache_mb: int = 1024
    # raw (TRAINER_INPUTS): in MovieLens-100K cold runs Transform took 25-26 s without writing the
    # three transformed splits against 37-38 s with them, and the Trainer 0-4 s more, applying the
    # graph itself: 93-96 s against 102-108 s in all (2026-12-02, bench/RESULTS.md). transformed pays
    # off where the splits do not fit cache_mb, so every epoch would apply the graph again, or where
    # Transform runs on a cluster.
    input: str = "raw"

    @property
    def reads_raw_examples(self) -> bool:
        """The Trainer reads ExampleGen's examples and applies Transform's graph itself (``input: raw``)."""
        return self.input == "raw"


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """TFMA metrics and the thresholds that decide whether a model is blessed."""

    metrics: tuple[str, ...] = (
        "ExampleCount",
        "AUC",
        "BinaryAccuracy",
        "Precision",
        "Recall",
        "Calibration",
    )
    # metric -> {"lower_bound": x} and/or {"upper_bound": y}
    value_thresholds: Mapping[str, Mapping[str, float]] = dataclasses.field(
        default_factory=lambda: {"AUC": {"lower_bound": 0.6}}
    )
    # metric -> largest allowed drop against the last blessed model (0 = no regression at all)
    no_regression: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"AUC": 0.0})
    # raw feature names per slice: (("target_categories",), ("user", "target")); reported per slice
    # besides the overall slice, never gated (thresholds apply to the overall slice only)
    slices: tuple[tuple[str, ...], ...] = ()


@dataclasses.dataclass(frozen=True)
class PushConfig:
    """Where blessed models go: ``<base_directory>/<model_name>/<version>/``."""

    base_directory: str
    model_name: str

    @property
    def model_directory(self) -> str:
        """The directory TF Serving's ``--model_base_path`` points at."""
        return os.path.join(self.base_directory, self.model_name)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Pipeline identity and where its artifacts and metadata live."""

    name: str
    root: str
    metadata_path: str
    enable_cache: bool = True


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The whole validated config."""

    pipeline: RunConfig
    data: DataConfig
    schema_path: str
    features: tuple[FeatureConfig, ...]
    label: LabelConfig
    model: ModelConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    push: PushConfig
    beam_args: tuple[str, ...]
    source: str = "<dict>"

    def feature(self, name: str) -> FeatureConfig:
        """The feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def preprocessing(self) -> PreprocessingConfig:
        """The part of the config Transform reads."""
        return PreprocessingConfig(self.features, self.label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form, for TFX ``custom_config`` and for writing next to the model."""
        return _json_safe(self)

    def with_data_path(self, path: str) -> PipelineConfig:
        """A copy reading data from ``path`` (a file, a glob or a directory of split files)."""
        return dataclasses.replace(self, data=dataclasses.replace(self.data, path=path))


# --------------------------------------------------------------------------- loading


def load_config(path: str | os.PathLike[str], check_schema: bool = True) -> PipelineConfig:
    """Read and validate a YAML config file; relative paths resolve against its directory.
    ``check_schema``: also check it against its schema file (not for ``schema infer``, which writes it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("<file>", f"no config file at {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError("<file>", f"{path} is not valid YAML: {e}") from e
    config = parse_config(raw, base_dir=path.resolve().parent, source=str(path))
    if check_schema:
        check_against_schema(config)
    return config


def check_against_schema(config: PipelineConfig) -> None:
    """The schema file exists, parses, and declares every configured feature and the label.

    Checked when a config file loads, so a missing schema or a misspelt feature is a config error
    at once (exit 2) instead of a traceback after 48 s or a KeyError in Transform.
    """
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if not tf.io.gfile.exists(config.schema_path):
        raise ConfigError("schema", f"no schema file at {config.schema_path} (write one with `embedpipe schema infer`)")
    schema = schema_pb2.Schema()
    try:
        with tf.io.gfile.GFile(config.schema_path) as f:
            text_format.Parse(f.read(), schema)
    except text_format.ParseError as e:
        raise ConfigError("schema", f"{config.schema_path} is not a Schema text proto: {e}") from e
    in_schema = {f.name: f for f in schema.feature}
    for i, feature in enumerate(config.features):
        if feature.name not in in_schema:
            raise ConfigError(f"features[{i}].name", f"'{feature.name}' is not a feature of the schema {config.schema_path}")
        _check_schema_shape(i, feature, in_schema[feature.name], config.schema_path)
    if config.label.name not in in_schema:
        raise ConfigError("label.name", f"'{config.label.name}' is not a feature of the schema {config.schema_path}")


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


def config_from_dict(raw: Mapping[str, Any]) -> PipelineConfig:
    """Rebuild a config from ``PipelineConfig.to_dict()`` (inside TFX components)."""
    return PipelineConfig(
        pipeline=RunConfig(**raw["pipeline"]),
        data=DataConfig(**raw["data"]),
        schema_path=raw["schema_path"],
        features=tuple(_feature_from_dict(f) for f in raw["features"]),
        label=LabelConfig(**raw["label"]),
        model=ModelConfig(
            **{
                **raw["model"],
                "hidden_units": tuple(raw["model"]["hidden_units"]),
                "concat": _optional_tuple(raw["model"]["concat"]),
                "attention": tuple(AttentionConfig(**a) for a in raw["model"].get("attention", ())),
            }
        ),
        training=TrainingConfig(**raw["training"]),
        evaluation=EvaluationConfig(**{**raw["evaluation"], "metrics": tuple(raw["evaluation"]["metrics"]),
                                       "slices": tuple(tuple(s) for s in raw["evaluation"]["slices"])}),
        push=PushConfig(**raw["push"]),
        beam_args=tuple(raw["beam_args"]),
        source=raw.get("source", "<dict>"),
    )


class _Section:
    """Reads one mapping of the raw config, tracking the dotted path for error messages."""

    def __init__(self, raw: Any, path: str, required: bool = True):
        if raw is None and not required:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "<root>", f"must be a mapping, got {type(raw).__name__}")
        self.raw = dict(raw)
        self.path = path
        self._read: set[str] = set()

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, choices: tuple = (), minimum: float | None = None) -> Any:
        """The value of ``key``, checked for type, allowed values and minimum."""
        self._read.add(key)
        field = self._field(key)
        if key not in self.raw or self.raw[key] is None:
            if default is ...:
                raise ConfigError(field, "is required" + (f"; one of {list(choices)}" if choices else ""))
            return default
        value = self.raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise ConfigError(field, f"must be {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise ConfigError(field, f"must be {_kind_name(kinds)}, got {value!r}")
        if choices and value not in choices:
            raise ConfigError(field, f"{value!r} is not allowed; one of {list(choices)}")
        if minimum is not None and value < minimum:
            raise ConfigError(field, f"must be >= {minimum}, got {value!r}")
        return value

    def section(self, key: str, required: bool = True) -> _Section:
        """A nested mapping."""
        self._read.add(key)
        if key not in self.raw and required:
            raise ConfigError(self._field(key), "is required")
        return _Section(self.raw.get(key), self._field(key), required=required)

    def finish(self) -> None:
        """Refuse keys nobody read: a typo must not be ignored."""
        unknown = sorted(set(self.raw) - self._read)
        if unknown:
            raise ConfigError(self._field(unknown[0]), f"unknown key; allowed keys here: {sorted(self._read)}")


def _optional_tuple(value: list | None) -> tuple | None:
    return None if value is None else tuple(value)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _resolve(base_dir: Path | None, value: str) -> str:
    if base_dir is None or "://" in value or os.path.isabs(value):
        return value
    return os.path.normpath(str(base_dir / value))


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


def parse_config(raw: Any, base_dir: Path | None = None, source: str = "<dict>") -> PipelineConfig:
    """Validate a raw (YAML-loaded) mapping into a :class:`PipelineConfig`."""
    root = _Section(raw, "")

    run_s = root.section("pipeline")
    name = run_s.get("name", str)
    run = RunConfig(
        name=name,
        root=_resolve(base_dir, run_s.get("root", str, f"runs/{name}/root")),
        metadata_path=_resolve(base_dir, run_s.get("metadata_path", str, f"runs/{name}/metadata.sqlite")),
        enable_cache=run_s.get("enable_cache", bool, True),
    )
    run_s.finish()

    data = _parse_data(root.section("data"), base_dir)
    schema_path = _resolve(base_dir, root.get("schema", str))

    raw_features = root.get("features", list)
    if not raw_features:
        raise ConfigError("features", "needs at least one feature")
    features = tuple(_parse_feature(f, f"features[{i}]") for i, f in enumerate(raw_features))

    label_s = root.section("label")
    label = LabelConfig(
        name=label_s.get("name", str),
        dtype=label_s.get("dtype", str, "float", choices=("int", "float", "string")),
        positive_if=label_s.get("positive_if", str, "== 1"),
    )
    label.rule  # noqa: B018 -- validates the rule now, naming label.positive_if
    label_s.finish()

    model = _parse_model(root.section("model", required=False))
    training = _parse_training(root.section("training", required=False))
    evaluation = _parse_evaluation(root.section("evaluation", required=False))

    push_s = root.section("push", required=False)
    push = PushConfig(
        base_directory=_resolve(base_dir, push_s.get("base_directory", str, f"runs/{name}/serving")),
        model_name=push_s.get("model_name", str, name),
    )
    push_s.finish()

    beam_s = root.section("beam", required=False)
    runner = beam_s.get("runner", str, "direct", choices=RUNNERS)
    options = beam_s.get("options", dict, {})
    try:
        profile = beam_args_for(runner, options)
    except ValueError as e:
        field, _, message = str(e).partition(": ")
        raise ConfigError(field, message) from e
    extra = [str(a) for a in beam_s.get("args", list, [])]
    if runner == "direct" and any(a.startswith("--direct_") for a in extra):
        profile = profile[:1]  # explicit direct_* args replace the direct profile's defaults
    beam_args = tuple(profile + extra)
    beam_s.finish()
    root.finish()

    config = PipelineConfig(
        pipeline=run,
        data=data,
        schema_path=schema_path,
        features=features,
        label=label,
        model=model,
        training=training,
        evaluation=evaluation,
        push=push,
        beam_args=beam_args,
        source=source,
    )
    _check_cross_fields(config)
    return config


def _parse_data(s: _Section, base_dir: Path | None) -> DataConfig:
    fmt = s.get("format", str, choices=DATA_FORMATS)
    path = _resolve(base_dir, s.get("path", str))
    delimiter = s.get("list_delimiter", str, "|")
    on_bad_record = s.get("on_bad_record", str, "fail", choices=BAD_RECORD_POLICIES)
    max_bad_fraction = s.get("max_bad_fraction", float, 0.01, minimum=0)
    if max_bad_fraction > 1:
        raise ConfigError("data.max_bad_fraction", f"must be between 0 and 1, got {max_bad_fraction}")
    if len(delimiter) != 1:
        raise ConfigError("data.list_delimiter", f"must be one character, got {delimiter!r}")
    split = s.section("split", required=False)
    hash_buckets = split.get("hash_buckets", dict, None)
    split_files = split.get("files", dict, None)
    split.finish()
    s.finish()
    if hash_buckets and split_files:
        raise ConfigError("data.split", "give either hash_buckets or files, not both")
    if not hash_buckets and not split_files:
        hash_buckets = dict(DEFAULT_HASH_BUCKETS)
    if hash_buckets:
        _check_splits("data.split.hash_buckets", hash_buckets, int, "validation: 1 (e.g. {train: 7, validation: 1, eval: 2})")
    if split_files:
        _check_splits("data.split.files", split_files, str, 'validation: "validation*" (a pattern of its own files)')
    return DataConfig(format=fmt, path=path, list_delimiter=delimiter, hash_buckets=hash_buckets, split_files=split_files,
                      on_bad_record=on_bad_record, max_bad_fraction=float(max_bad_fraction))


def _check_splits(field: str, mapping: Mapping[str, Any], kind: type, add_validation: str) -> None:
    """Exactly the three splits, each a positive bucket count (int) or a file pattern (str)."""
    if VALIDATION not in mapping and set(mapping) == {TRAIN, EVAL}:
        # the old two-split form: the Trainer would have to pick its epoch on eval, the split that gates
        raise ConfigError(f"{field}.{VALIDATION}", f"is required: the Trainer early-stops on validation so that eval, "
                                                   f"which blesses the model, is never used to select it; add {add_validation}")
    if set(mapping) != set(SPLITS):
        raise ConfigError(field, f"must name exactly the splits {list(SPLITS)}, got {sorted(mapping)}")
    for split_name, value in mapping.items():
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 1):
            raise ConfigError(f"{field}.{split_name}", f"must be {'a positive integer' if kind is int else 'a file pattern'}, got {value!r}")


def _parse_feature(raw: Any, path: str) -> FeatureConfig:
    s = _Section(raw, path)
    name = s.get("name", str)
    if not name.isidentifier():
        raise ConfigError(f"{path}.name", f"{name!r} must be a valid identifier (letters, digits, _)")
    if name == LABEL_KEY:
        raise ConfigError(f"{path}.name", f"{LABEL_KEY!r} is reserved for the transformed label")
    kind = s.get("kind", str, choices=FEATURE_KINDS)
    v = s.section("vocabulary", required=False)
    vocabulary = VocabularyConfig(
        top_k=v.get("top_k", int, None, minimum=1),
        frequency_threshold=v.get("frequency_threshold", int, 1, minimum=1),
        num_oov_buckets=v.get("num_oov_buckets", int, 1, minimum=0),
    )
    v.finish()
    if kind == "sequence":
        max_length = s.get("max_length", int, minimum=1)
        truncate = s.get("truncate", str, "keep_last", choices=TRUNCATIONS)
        padding = s.get("padding", str, "end", choices=PADDINGS)
    else:
        if s.raw.get("max_length") not in (None, 1):
            raise ConfigError(f"{path}.max_length", "an id feature has exactly one value; use kind: sequence for lists")
        s.get("max_length", int, 1)
        if "truncate" in s.raw:
            raise ConfigError(f"{path}.truncate", "only sequence features are truncated")
        if "padding" in s.raw:
            raise ConfigError(f"{path}.padding", "only sequence features are padded")
        max_length, truncate, padding = 1, "keep_last", "end"
    feature = FeatureConfig(
        name=name,
        kind=kind,
        dtype=s.get("dtype", str, choices=DTYPES),
        embedding_dim=s.get("embedding_dim", int, minimum=1),
        vocabulary=vocabulary,
        max_length=max_length,
        truncate=truncate,
        padding=padding,
        mask_zero=s.get("mask_zero", bool, True),
        pooling=s.get("pooling", str, None, choices=POOLINGS),
        share_embedding_with=s.get("share_embedding_with", str, None),
        query=s.get("query", str, None),
    )
    s.finish()
    return feature


def _parse_model(s: _Section) -> ModelConfig:
    rnn = s.section("rnn", required=False)
    model = ModelConfig(
        type=s.get("type", str, "pooled", choices=MODEL_TYPES),
        pooling=s.get("pooling", str, "mean", choices=POOLINGS),
        rnn_cell=rnn.get("cell", str, "lstm", choices=RNN_CELLS),
        rnn_units=rnn.get("units", int, 32, minimum=1),
        hidden_units=tuple(s.get("hidden_units", list, [64, 32])),
        concat=_optional_tuple(s.get("concat", list, None)),
        dropout=s.get("dropout", float, 0.0, minimum=0.0),
        l2=s.get("l2", float, 0.0, minimum=0.0),
        embedding_l2=s.get("embedding_l2", float, 0.0, minimum=0.0),
        query=s.get("query", str, None),
        cross_layers=s.get("cross_layers", int, 0, minimum=0),
        cross_projection_dim=s.get("cross_projection_dim", int, None, minimum=1),
        attention=tuple(_parse_attention(a, f"model.attention[{i}]") for i, a in enumerate(s.get("attention", list, []))),
    )
    rnn.finish()
    s.finish()
    if any(not isinstance(u, int) or isinstance(u, bool) or u < 1 for u in model.hidden_units):
        raise ConfigError("model.hidden_units", f"must be a list of positive integers, got {list(model.hidden_units)}")
    if model.dropout >= 1:
        raise ConfigError("model.dropout", f"must be < 1, got {model.dropout}")
    if model.cross_projection_dim is not None and not model.cross_layers:
        raise ConfigError("model.cross_projection_dim", "is the rank of the cross layers; set model.cross_layers >= 1 too")
    return model


def _parse_attention(raw: Any, path: str) -> AttentionConfig:
    s = _Section(raw, path)
    attention = AttentionConfig(query=s.get("query", str), keys=s.get("keys", str), values=s.get("values", str, None))
    s.finish()
    return attention


def _parse_training(s: _Section) -> TrainingConfig:
    es = s.section("early_stopping", required=False)
    training = TrainingConfig(
        batch_size=s.get("batch_size", int, 256, minimum=1),
        epochs=s.get("epochs", int, 3, minimum=1),
        steps_per_epoch=s.get("steps_per_epoch", int, None, minimum=1),
        learning_rate=s.get("learning_rate", float, 1e-3, minimum=0.0),
        early_stopping_patience=es.get("patience", int, 2, minimum=0),
        early_stopping_monitor=es.get("monitor", str, "val_auc", choices=("val_auc", "val_loss")),
        seed=s.get("seed", int, 0),
        cache_mb=s.get("cache_mb", int, 1024, minimum=0),
        input=s.get("input", str, "raw", choices=TRAINER_INPUTS),
    )
    es.finish()
    s.finish()
    if training.learning_rate <= 0:
        raise ConfigError("training.learning_rate", f"must be > 0, got {training.learning_rate}")
    return training


def _parse_evaluation(s: _Section) -> EvaluationConfig:
    default = EvaluationConfig()
    metrics = tuple(s.get("metrics", list, list(default.metrics)))
    for i, m in enumerate(metrics):
        if m not in TFMA_METRICS:
            raise ConfigError(f"evaluation.metrics[{i}]", f"{m!r} is not supported; one of {list(TFMA_METRICS)}")
    thresholds = s.get("value_thresholds", dict, dict(default.value_thresholds))
    for metric, bounds in thresholds.items():
        field = f"evaluation.value_thresholds.{metric}"
        if metric not in metrics:
            raise ConfigError(field, f"{metric!r} is not in evaluation.metrics {list(metrics)}")
        if not isinstance(bounds, Mapping) or not bounds or set(bounds) - {"lower_bound", "upper_bound"}:
            raise ConfigError(field, "must be a mapping with lower_bound and/or upper_bound")
        for k, b in bounds.items():
            if isinstance(b, bool) or not isinstance(b, (int, float)):
                raise ConfigError(f"{field}.{k}", f"must be a number, got {b!r}")
    no_regression = s.get("no_regression", dict, dict(default.no_regression))
    for metric, tolerance in no_regression.items():
        field = f"evaluation.no_regression.{metric}"
        if metric not in metrics:
            raise ConfigError(field, f"{metric!r} is not in evaluation.metrics {list(metrics)}")
        if metric not in HIGHER_IS_BETTER + LOWER_IS_BETTER:
            raise ConfigError(field, f"{metric!r} has no better direction; one of {list(HIGHER_IS_BETTER + LOWER_IS_BETTER)}")
        if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
            raise ConfigError(field, f"must be the allowed drop, a number >= 0, got {tolerance!r}")
    slices = _parse_slices(s.get("slices", list, []))
    s.finish()
    if not thresholds:
        raise ConfigError("evaluation.value_thresholds", "needs at least one threshold: without one TFMA never blesses a model")
    return EvaluationConfig(
        metrics=metrics,
        value_thresholds={k: {b: float(x) for b, x in v.items()} for k, v in thresholds.items()},
        no_regression={k: float(v) for k, v in no_regression.items()},
        slices=slices,
    )


def _parse_slices(raw: list) -> tuple[tuple[str, ...], ...]:
    """``[[a], [a, b]]``: each slice a non-empty list of distinct names, no slice twice (the names
    themselves are checked against the features in ``_check_cross_fields``)."""
    slices: list[tuple[str, ...]] = []
    for i, names in enumerate(raw):
        field = f"evaluation.slices[{i}]"
        if not isinstance(names, list) or not names:
            raise ConfigError(field, f"must be a non-empty list of feature names, e.g. [target_categories], got {names!r}")
        for j, name in enumerate(names):
            if not isinstance(name, str):
                raise ConfigError(f"{field}[{j}]", f"must be a feature name, got {name!r}")
            if names.index(name) != j:
                raise ConfigError(f"{field}[{j}]", f"{name!r} is already in this slice")
        key = tuple(sorted(names))  # TFMA slices on a set of features: [a, b] and [b, a] are one slice
        if key in (tuple(sorted(s)) for s in slices):
            raise ConfigError(field, f"{names} is already a slice")
        slices.append(tuple(names))
    return tuple(slices)


def _check_cross_fields(config: PipelineConfig) -> None:
    """Checks that need several sections at once."""
    names = [f.name for f in config.features]
    for i, f in enumerate(config.features):
        if names.index(f.name) != i:
            raise ConfigError(f"features[{i}].name", f"{f.name!r} is already used by features[{names.index(f.name)}]")
        if f.name == config.label.name:
            raise ConfigError(f"features[{i}].name", f"{f.name!r} is the label column (label.name)")
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
    check_model_shapes(config)


def _check_slice_names(config: PipelineConfig) -> None:
    """Slices name raw features. Not the label: each of its values holds one class only, where AUC
    is undefined (TFMA reports 0), so such a slice would only mislead."""
    names = [f.name for f in config.features]
    for i, slice_names in enumerate(config.evaluation.slices):
        for j, name in enumerate(slice_names):
            field = f"evaluation.slices[{i}][{j}]"
            if name == config.label.name:
                raise ConfigError(field, f"{name!r} is the label column: each of its values holds one class, where AUC is undefined")
            if name not in names:
                raise ConfigError(field, f"{name!r} is not a feature; features: {names}")
