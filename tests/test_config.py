"""Config validation: valid files load; every mistake is refused with the field's name."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from embedconfig.config import ConfigError, config_as_dict, label_is_positive, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["synthetic.yaml", "movielens.yaml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "configs" / name)
    assert config.features and config.schema.endswith(".pbtxt")
    assert Path(config.schema).is_file(), "relative paths resolve against the config's directory"


def test_round_trip_through_dict(raw_config: dict) -> None:
    config = parse_config(raw_config)
    assert parse_config(config_as_dict(config)) == config


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path, raw_config: dict) -> None:
    raw_config["data"]["path"] = "data/*.jsonl"
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "c.yaml"
    path.write_text(yaml.safe_dump(raw_config))
    assert load_config(path).data.path == str(tmp_path / "cfg" / "data" / "*.jsonl")


def _error(raw: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return info.value


def test_unknown_key_is_refused_by_its_path(raw_config: dict) -> None:
    raw_config["training"]["epoch"] = 3
    e = _error(raw_config)
    assert e.field == "training.epoch" and "allowed keys" in str(e)


def test_bad_choice_names_field_and_allowed_values(raw_config: dict) -> None:
    raw_config["features"][1]["kind"] = "list"
    e = _error(raw_config)
    assert e.field == "features[1].kind" and "'sequence'" in str(e)


def test_missing_required_field(raw_config: dict) -> None:
    del raw_config["features"][2]["max_length"]
    assert _error(raw_config).field == "features[2].max_length"


def test_wrong_type(raw_config: dict) -> None:
    raw_config["training"]["batch_size"] = "big"
    assert _error(raw_config).field == "training.batch_size"


def test_the_trainer_reads_raw_examples_unless_told_otherwise(raw_config: dict) -> None:
    assert parse_config(raw_config).training.reads_raw_examples
    raw_config["training"]["input"] = "transformed"
    assert not parse_config(raw_config).training.reads_raw_examples
    raw_config["training"]["input"] = "parsed"
    e = _error(raw_config)
    assert e.field == "training.input" and "'transformed'" in str(e)


def test_label_rule_is_parsed_and_applied(raw_config: dict) -> None:
    raw_config["label"] = {"name": "rating", "dtype": "float", "positive_if": ">= 4"}
    label = parse_config(raw_config).label
    assert label.rule == (">=", 4.0)
    assert label_is_positive(4.0, label) and not label_is_positive(3.5, label)


def test_bad_label_rule(raw_config: dict) -> None:
    raw_config["label"]["positive_if"] = "at least 4"
    assert _error(raw_config).field == "label.positive_if"


def test_duplicate_feature_name(raw_config: dict) -> None:
    raw_config["features"][1]["name"] = "user"
    assert _error(raw_config).field == "features[1].name"


def test_shared_embedding_needs_same_dtype(raw_config: dict) -> None:
    raw_config["features"][3]["share_embedding_with"] = "interests"  # target (int) with interests (string)
    e = _error(raw_config)
    assert e.field == "features[3].share_embedding_with" and "dtype" in str(e)


def test_shared_embedding_needs_same_dim(raw_config: dict) -> None:
    raw_config["features"][3]["embedding_dim"] = 99
    assert _error(raw_config).field == "features[3].embedding_dim"


def test_concat_of_different_lengths_names_features_and_shapes(raw_config: dict) -> None:
    raw_config["model"] = {"type": "concat_flatten"}
    e = _error(raw_config)
    assert e.field == "model.concat"
    assert "interests (sequence, [batch, 8, 8])" in str(e) and "history (sequence, [batch, 30, 8])" in str(e)


def test_id_feature_inside_concat_rnn_is_refused(raw_config: dict) -> None:
    raw_config["model"] = {"type": "concat_rnn", "concat": ["history", "target"]}
    e = _error(raw_config)
    assert "target" in str(e) and "timesteps" in str(e)


def test_concat_rnn_accepts_equal_lengths(raw_config: dict) -> None:
    raw_config["features"][1]["max_length"] = 30
    raw_config["model"] = {"type": "concat_rnn", "concat": ["interests", "history"]}
    assert parse_config(raw_config).model.concat == ("interests", "history")


def test_threshold_on_unlisted_metric(raw_config: dict) -> None:
    raw_config["evaluation"]["value_thresholds"] = {"Recall": {"lower_bound": 0.5}}
    raw_config["evaluation"]["metrics"] = ["AUC"]
    raw_config["evaluation"]["no_regression"] = {}
    assert _error(raw_config).field == "evaluation.value_thresholds.Recall"


def test_split_must_name_train_validation_and_eval(raw_config: dict) -> None:
    raw_config["data"]["split"] = {"hash_buckets": {"train": 4, "validation": 1, "test": 1}}
    e = _error(raw_config)
    assert e.field == "data.split.hash_buckets" and "['train', 'validation', 'eval']" in str(e)


@pytest.mark.parametrize("split, words", [
    ({"hash_buckets": {"train": 4, "eval": 1}}, "add validation: 1"),
    ({"files": {"train": "train*", "eval": "eval*"}}, 'add validation: "validation*"'),
])
def test_a_split_without_validation_is_refused_saying_what_to_add(raw_config: dict, split: dict, words: str) -> None:
    """The Trainer early-stops on validation, so eval (which blesses) never selects the model."""
    raw_config["data"]["split"] = split
    e = _error(raw_config)
    assert e.field == f"data.split.{next(iter(split))}.validation" and words in str(e) and "never used to select" in str(e)


def test_default_split_has_validation_and_keeps_eval_share(raw_config: dict) -> None:
    del raw_config["data"]["split"]
    assert parse_config(raw_config).data.split.hash_buckets == {"train": 7, "validation": 1, "eval": 2}
    raw_config["data"]["split"] = {"files": {"train": "a*", "validation": "b*", "eval": "c*"}}
    data = parse_config(raw_config).data
    assert data.split.files == {"train": "a*", "validation": "b*", "eval": "c*"} and data.split.hash_buckets is None


def test_slices_parse_and_round_trip(raw_config: dict) -> None:
    raw_config["evaluation"]["slices"] = [["target_categories"], ["user", "target"]]
    config = parse_config(raw_config)
    assert config.evaluation.slices == (("target_categories",), ("user", "target"))
    assert parse_config(config_as_dict(config)) == config
    del raw_config["evaluation"]["slices"]
    assert parse_config(raw_config).evaluation.slices == ()


@pytest.mark.parametrize("slices, field, words", [
    ([["target_categories"], ["usr"]], "evaluation.slices[1][0]", "'usr' is not a feature"),
    ([["user", "clicked"]], "evaluation.slices[0][1]", "is the label column"),
    ([["user", "user"]], "evaluation.slices[0][1]", "already in this slice"),
    ([["user", "target"], ["target", "user"]], "evaluation.slices[1]", "already a slice"),
    ([[]], "evaluation.slices[0]", "non-empty list"),
    (["user"], "evaluation.slices[0]", "non-empty list"),
    ([["user", 3]], "evaluation.slices[0][1]", "must be a feature name"),
])
def test_slice_mistakes_name_the_field(raw_config: dict, slices: list, field: str, words: str) -> None:
    raw_config["evaluation"]["slices"] = slices
    e = _error(raw_config)
    assert e.field == field and words in str(e), str(e)


def test_beam_runner_profiles_build_args_and_name_missing_options(raw_config) -> None:
    raw_config["beam"] = {"runner": "dataflow", "options": {"project": "p", "region": "europe-west1",
                                                            "temp_location": "gs://b/tmp", "sdk_container_image": "img"}}
    args = parse_config(raw_config).beam.pipeline_args()
    assert "--runner=DataflowRunner" in args and "--project=p" in args and "--sdk_container_image=img" in args
    raw_config["beam"] = {"runner": "dataflow", "options": {"project": "p", "region": "r"}}
    with pytest.raises(ConfigError, match="beam.options.temp_location"):
        parse_config(raw_config)
    raw_config["beam"] = {"runner": "flink", "options": {"job_endpoint": "flink:8099", "environment_config": "sdk-img"}}
    assert "--runner=PortableRunner" in parse_config(raw_config).beam.pipeline_args()
    raw_config["beam"] = {"runner": "spark", "options": {"job_endpoint": "x", "environment_config": "i", "typo": 1}}
    with pytest.raises(ConfigError, match="beam.options.typo"):
        parse_config(raw_config)
    raw_config["beam"] = {"runner": "direct"}
    # the mode is settled from the input's size when the pipeline is built (pipeline/beam_mode.py)
    assert parse_config(raw_config).beam.pipeline_args() == ("--runner=DirectRunner", "--direct_running_mode=auto")
    raw_config["beam"] = {"runner": "direct", "options": {"direct_running_mode": "fast"}}
    with pytest.raises(ConfigError, match="beam.options.direct_running_mode"):
        parse_config(raw_config)


def _pool_history(raw: dict, **fields: object) -> dict:
    raw["features"][2].update(fields)  # features[2] is history (a sequence); [0] user and [3] target are ids
    return raw


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda r: _pool_history(r, pooling="target_attention", query="item"), "features[2].query", "not a feature"),
        (lambda r: _pool_history(r, pooling="target_attention", query="interests"), "features[2].query", "is a sequence"),
        (lambda r: _pool_history(r, pooling="target_attention"), "features[2].query", "needs a query"),
        (lambda r: _pool_history(r, query="target"), "features[2].query", "pooled with mean"),
        (lambda r: r["features"][0].update(pooling="target_attention", query="target"), "features[0].pooling", "id feature"),
        (lambda r: r.update(model={"pooling": "target_attention"}), "features[1].query", "(model.pooling), which needs a query"),
        (lambda r: r.update(model={"pooling": "target_attention", "query": "interests"}), "model.query", "is a sequence"),
        (lambda r: r.update(model={"query": "target"}), "model.query", "no feature takes it"),
        (lambda r: (_pool_history(r, pooling="target_attention", query="target"), r.update(model={"type": "concat_flatten", "concat": ["history"]})),
         "features[2].pooling", "joined by model.concat"),
        (lambda r: (_pool_history(r, query="target"), r.update(model={"type": "concat_flatten", "concat": ["history"]})),
         "features[2].query", "joined by model.concat"),
        (lambda r: r.update(model={"cross_layers": -1}), "model.cross_layers", ">= 0"),
        (lambda r: r.update(model={"embedding_l2": -1e-4}), "model.embedding_l2", ">= 0"),
        (lambda r: r.update(model={"cross_projection_dim": 4}), "model.cross_projection_dim", "cross_layers >= 1"),
        (lambda r: r.update(model={"cross_layers": 1, "cross_projection_dim": 36}), "model.cross_projection_dim", "width of the concatenated feature vector, 36"),
    ],
    ids=["query_not_a_feature", "query_not_an_id", "no_query", "query_without_target_attention", "target_attention_on_an_id",
         "model_pooling_without_query", "model_query_not_an_id", "model_query_unused", "target_attention_inside_concat",
         "query_inside_concat", "negative_cross_layers", "negative_embedding_l2", "rank_without_cross_layers", "rank_not_below_width"],
)
def test_target_attention_and_cross_mistakes_name_the_field(raw_config: dict, mutate, field: str, words: str) -> None:
    mutate(raw_config)
    e = _error(raw_config)
    assert e.field == field and words in str(e), str(e)


def _attention(*entries: dict) -> dict:
    return {"attention": list(entries)}


@pytest.mark.parametrize(
    "model, field, words",
    [
        (_attention({"query": "interests", "keys": "history"}), "model.attention[0].query", "is a sequence"),
        (_attention({"query": "target", "keys": "target"}), "model.attention[0].keys", "is an id feature"),
        (_attention({"query": "target", "keys": "history", "values": "item"}), "model.attention[0].values", "not a feature"),
        (_attention({"query": "target", "keys": "history", "values": "target_categories"}), "model.attention[0].values",
         "must line up step by step with the keys 'history': the same max_length, truncate and padding; got max_length 30/4"),
        (_attention({"query": "target"}), "model.attention[0].keys", "is required"),
        (_attention({"query": "target", "keys": "history", "value": "interests"}), "model.attention[0].value", "unknown key"),
        ({"attention": {"query": "target"}}, "model.attention", "must be a list"),
    ],
    ids=["query_not_an_id", "keys_not_a_sequence", "values_not_a_feature", "values_not_aligned", "no_keys", "typo", "not_a_list"],
)
def test_attention_mistakes_name_the_field(raw_config: dict, model: dict, field: str, words: str) -> None:
    raw_config["model"] = model
    e = _error(raw_config)
    assert e.field == field and words in str(e), str(e)


def test_attention_round_trips(raw_config: dict) -> None:
    raw_config["features"][1]["max_length"] = 30  # interests, lined up with history
    raw_config["model"] = _attention({"query": "target", "keys": "history", "values": "interests"}, {"query": "user", "keys": "history"})
    config = parse_config(raw_config)
    assert [(a.query, a.keys, a.values_feature) for a in config.model.attention] == [
        ("target", "history", "interests"), ("user", "history", "history")]
    assert parse_config(config_as_dict(config)) == config


def test_target_attention_query_defaults_to_model_query_and_round_trips(raw_config: dict) -> None:
    _pool_history(raw_config, pooling="target_attention", query="target")  # its own query wins over model.query
    raw_config["features"][1]["pooling"] = "target_attention"  # interests: takes model.query
    raw_config["model"] = {"query": "user", "cross_layers": 2, "cross_projection_dim": 8}
    config = parse_config(raw_config)
    assert (config.features[2].query, config.model.query, config.model.cross_layers) == ("target", "user", 2)
    assert parse_config(config_as_dict(config)) == config


def test_a_window_over_several_spans_needs_a_span_placeholder(raw_config: dict) -> None:
    raw_config["data"]["window"] = {"spans": 3}
    with pytest.raises(ValueError, match=r"config field 'data.window': reads several spans, but data.path names none"):
        parse_config(raw_config)
    raw_config["data"]["path"] = "data/span-{SPAN}/"
    assert parse_config(raw_config).data.window.spans == 3
    raw_config["data"]["window"] = {"start": 2}
    with pytest.raises(ValueError, match=r"config field 'data.window.end': a fixed range needs both start and end"):
        parse_config(raw_config)


def test_drift_thresholds_name_features(raw_config: dict) -> None:
    raw_config["data"]["drift"] = {"default": 0.2, "features": {"history": 0.4}}
    drift = parse_config(raw_config).data.drift
    assert (drift.threshold("history"), drift.threshold("user")) == (0.4, 0.2)
    raw_config["data"]["drift"] = {"features": {"histroy": 0.4}}
    e = _error(raw_config)
    assert e.field == "data.drift.features.histroy" and "not a feature" in str(e)
