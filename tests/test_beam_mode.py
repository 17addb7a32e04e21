"""DirectRunner's mode chosen from the input's size (pipeline/beam_mode.py), on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedconfig.config import BeamConfig, parse_config
from pipeline.beam_mode import MULTI_PROCESSING_FROM_BYTES, beam_choice, direct_mode, input_bytes
from pipeline.pipeline_factory import create_pipeline

AUTO = BeamConfig()  # runner: direct, direct_running_mode: auto


def test_small_input_runs_in_memory_on_one_worker() -> None:
    choice = direct_mode(AUTO, 20 * 2**20, cores=2)
    assert choice.args == ("--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1")
    assert choice.reason == "auto: in_memory (20 MB of input, < 128 MB)"


def test_large_input_runs_one_worker_per_core() -> None:
    choice = direct_mode(AUTO, MULTI_PROCESSING_FROM_BYTES, cores=4)
    assert choice.args == ("--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=4")
    three = BeamConfig(options={"direct_running_mode": "auto", "direct_num_workers": 3})
    assert direct_mode(three, MULTI_PROCESSING_FROM_BYTES, cores=4).args == (
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=3"), "a worker count given is kept"
    flags = BeamConfig(args=("--direct_num_workers=3",))
    assert direct_mode(flags, MULTI_PROCESSING_FROM_BYTES, cores=4).args == ("--runner=DirectRunner", "--direct_num_workers=3"), \
        "direct_* flags in beam.args replace the options, auto included"
    one_core = direct_mode(AUTO, 10 * MULTI_PROCESSING_FROM_BYTES, cores=1)
    assert "--direct_running_mode=in_memory" in one_core.args and one_core.reason.endswith("but one core)")


def test_unknown_size_and_configured_modes() -> None:
    assert "--direct_running_mode=in_memory" in direct_mode(AUTO, None, cores=8).args
    configured = BeamConfig(options={"direct_running_mode": "multi_processing", "direct_num_workers": 2})
    assert direct_mode(configured, 1, cores=8) == direct_mode(configured, None, cores=1)
    assert direct_mode(configured, 1, cores=8).args == (
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2")


def test_input_bytes_counts_every_split_file(raw_config: dict, tmp_path: Path) -> None:
    data = tmp_path / "split"
    data.mkdir()
    for name, size in (("train-0.jsonl", 3000), ("train-1.jsonl", 2000), ("validation.jsonl", 700), ("eval.jsonl", 500),
                       ("notes.txt", 10_000)):
        (data / name).write_bytes(b"x" * size)
    raw_config["data"] = {"format": "jsonl", "path": str(data),
                          "split": {"files": {"train": "train-*.jsonl", "validation": "validation*", "eval": "eval*"}}}
    assert input_bytes(parse_config(raw_config).data) == 6200, "the split patterns' files only"
    raw_config["data"] = {"format": "jsonl", "path": str(data / "train-0.jsonl")}
    assert input_bytes(parse_config(raw_config).data) == 3000


def test_the_pipeline_gets_the_settled_mode(raw_config: dict, tmp_path: Path) -> None:
    from pipeline.datasets.synthetic import write_synthetic

    write_synthetic(str(tmp_path / "data"), rows=50)
    config = parse_config(raw_config)
    assert config.beam.options["direct_running_mode"] == "auto"
    args = create_pipeline(config).beam_pipeline_args
    assert "--direct_running_mode=in_memory" in args and "--direct_running_mode=auto" not in args
    compiled = beam_choice(config.with_data_path("gs://nowhere/data/"), compiled=True)  # nothing is read
    assert compiled.reason == "auto: in_memory (input size unknown where the pipeline is compiled)"


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_a_configured_mode_is_kept(raw_config: dict, tmp_path: Path, mode: str) -> None:
    from pipeline.datasets.synthetic import write_synthetic

    write_synthetic(str(tmp_path / "data"), rows=50)
    raw_config["beam"] = {"runner": "direct", "options": {"direct_running_mode": mode, "direct_num_workers": 2}}
    choice = beam_choice(parse_config(raw_config))
    assert f"--direct_running_mode={mode}" in choice.args and choice.reason == "as configured"
