"""`embedpipe config show` and `embedpipe config schema`: the resolved config is a config again, and
the JSON Schema an editor checks a config with accepts what the loader accepts and refuses what it refuses.

The pushed model's config.json, loaded back from the bucket it was pushed to, is checked in
tests/test_pipeline_e2e.py, where a real run pushes one.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import jsonschema
import pytest
import yaml

from embedconfig.config import config_as_yaml, config_json_schema, load_config, parse_config
from pipeline.cli import main
from tests.helpers.configs import REPO, synthetic_raw_config
from tests.helpers.small_model import small_model_config

SHIPPED = sorted((REPO / "configs").glob("*.yaml"))


def _show(capsys: pytest.CaptureFixture[str], path: Path | str) -> str:
    assert main(["config", "show", "--config", str(path)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_showing_a_shipped_config_gives_a_config_that_shows_the_same(path: Path, tmp_path: Path, capsys) -> None:
    shown = _show(capsys, path)
    again = tmp_path / "shown.yaml"
    again.write_text(shown)
    assert _show(capsys, again) == shown, "config show of its own output gives the same output"
    assert load_config(again, check_schema=False) == load_config(path, check_schema=False)
    assert "max_bad_fraction: 0.01" in shown and "cache_mb: 1024" in shown, "every default is filled in"


def _with_model(model: dict[str, Any]) -> Callable[[Path], dict[str, Any]]:
    def build(work: Path) -> dict[str, Any]:
        raw = synthetic_raw_config(work, work / "data")
        raw["features"][1]["max_length"] = 30  # interests lines up with history
        raw["model"] = model
        return raw
    return build


def _new_dataset(work: Path) -> dict[str, Any]:
    from tests.test_new_dataset import CONFIG

    beam = {"runner": "portable", "options": {"job_endpoint": "127.0.0.1:8099", "environment_config": "127.0.0.1:50000"}}
    return {**copy.deepcopy(CONFIG), "beam": beam}


TEST_CONFIGS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "synthetic_raw_config": lambda work: synthetic_raw_config(work, work / "data"),
    "small_model_config": lambda work: json.loads(json.dumps(small_model_config(work).model_dump(mode="json"))),
    "new_dataset_on_the_portable_runner": _new_dataset,
    "concat_rnn": _with_model({"type": "concat_rnn", "concat": ["interests", "history"], "rnn": {"cell": "gru", "units": 8}}),
    "attention_and_cross_layers": _with_model({"attention": [{"query": "target", "keys": "history", "values": "interests"}],
                                               "cross_layers": 2, "cross_projection_dim": 8, "embedding_l2": 3e-4}),
    "target_attention": _with_model({"pooling": "target_attention", "query": "target"}),
}


@pytest.mark.parametrize("name", TEST_CONFIGS)
def test_the_tests_configs_round_trip_through_show(name: str, tmp_path: Path) -> None:
    config = parse_config(TEST_CONFIGS[name](tmp_path), base_dir=tmp_path)
    shown = config_as_yaml(config)
    again = parse_config(yaml.safe_load(shown))
    assert again == config and config_as_yaml(again) == shown


def test_the_default_config_is_the_built_in_example(capsys) -> None:
    built_in = _show(capsys, REPO / "configs" / "synthetic.yaml")
    assert main(["config", "show"]) == 0
    assert capsys.readouterr().out == built_in


def test_show_of_a_missing_file_exits_2_naming_it(capsys) -> None:
    assert main(["config", "show", "--config", "/no/such/config.yaml"]) == 2
    assert "no config file at /no/such/config.yaml" in capsys.readouterr().err


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = config_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_config_schema_prints_the_json_schema(capsys, tmp_path: Path) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_json_schema()
    assert main(["config", "schema", "--output", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text()) == config_json_schema()


def test_the_shipped_json_schema_is_the_current_one() -> None:
    """configs/embedpipe.schema.json is what editors read (README): it must say what the loader checks."""
    shipped = json.loads((REPO / "configs" / "embedpipe.schema.json").read_text())
    assert shipped == config_json_schema(), "run: embedpipe config schema --output configs/embedpipe.schema.json"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_json_schema_accepts_every_shipped_config_as_written(validator, path: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("name", TEST_CONFIGS)
def test_the_json_schema_accepts_the_tests_configs_and_their_shown_form(validator, name: str, tmp_path: Path) -> None:
    raw = TEST_CONFIGS[name](tmp_path)
    assert list(validator.iter_errors(raw)) == []
    assert list(validator.iter_errors(yaml.safe_load(config_as_yaml(parse_config(raw, base_dir=tmp_path))))) == []


@pytest.mark.parametrize("mutate, path", [
    (lambda r: r["features"][1].update(kind="list"), ["features", 1, "kind"]),
    (lambda r: r["training"].update(epoch=3), ["training"]),
    (lambda r: r["features"][2].pop("max_length"), ["features", 2]),
    (lambda r: r["training"].update(batch_size="big"), ["training", "batch_size"]),
    (lambda r: r["training"].update(epochs=0), ["training", "epochs"]),
    (lambda r: r["evaluation"].update(value_thresholds={"AUC": {"low": 0.5}}), ["evaluation", "value_thresholds", "AUC"]),
    (lambda r: r.pop("label"), []),
], ids=["bad_choice", "unknown_key", "sequence_without_max_length", "wrong_type", "below_minimum", "bad_bound", "no_label"])
def test_the_json_schema_refuses_what_the_loader_refuses(validator, raw_config: dict, mutate, path: list) -> None:
    mutate(raw_config)
    errors = list(validator.iter_errors(raw_config))
    assert errors and any(list(e.absolute_path) == path for e in errors), [(list(e.absolute_path), e.message) for e in errors]
    with pytest.raises(ValueError, match="config field"):
        parse_config(raw_config)
