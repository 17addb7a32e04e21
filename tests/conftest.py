"""Shared fixtures: configs that point every path of the built-in example into a temp dir."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

import pipeline  # noqa: F401 -- TF_USE_LEGACY_KERAS=1 before TensorFlow is imported anywhere

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC_YAML = REPO / "configs" / "synthetic.yaml"


def synthetic_raw_config(work: Path, data_path: Path, name: str = "embedpipe-test") -> dict[str, Any]:
    """configs/synthetic.yaml as a dict, with data, artifacts and pushes under ``work``."""
    raw = yaml.safe_load(SYNTHETIC_YAML.read_text())
    raw["pipeline"] = {"name": name, "root": str(work / "root"), "metadata_path": str(work / "metadata.sqlite")}
    raw["data"]["path"] = str(data_path)
    raw["schema"] = str(REPO / "schema" / "synthetic.pbtxt")
    raw["push"]["base_directory"] = str(work / "serving")
    return raw


@pytest.fixture
def raw_config(tmp_path: Path) -> dict[str, Any]:
    """A valid raw config dict to mutate in tests."""
    return copy.deepcopy(synthetic_raw_config(tmp_path, tmp_path / "data"))


@pytest.fixture(scope="session")
def pipeline_runs(tmp_path_factory: pytest.TempPathFactory):
    """Two runs of the built-in example (the e2e tests check them; serving tests use the pushed model).

    (config, first summary, second summary, progress output of the first run)
    """
    from embedconfig.config import parse_config
    from pipeline.datasets.synthetic import write_synthetic
    from pipeline.local_runner import run_locally

    work = tmp_path_factory.mktemp("e2e")
    write_synthetic(str(work / "data"), rows=6000, seed=0)
    raw = synthetic_raw_config(work, work / "data")
    first_out = io.StringIO()
    first = run_locally(parse_config(raw), out=first_out)
    second_raw = copy.deepcopy(raw)
    second_raw["training"]["seed"] = 1  # a retrain: the Trainer runs again, upstream is cached
    second = run_locally(parse_config(second_raw), out=io.StringIO())
    return parse_config(raw), first, second, first_out.getvalue()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """A local S3-API server for the session; this process reaches it through tf.io.gfile and boto3.

    The standard AWS variables point at it (subprocesses get them from ``s3.env()``); restored after.
    """
    from storage import configure_s3_environment, enable_object_storage
    from tests.s3_server import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    saved = dict(os.environ)
    os.environ.update(server.env())
    configure_s3_environment()  # tensorflow-io reads its endpoint when its first client is made
    enable_object_storage()
    yield server
    server.stop()
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def pushed_model(pipeline_runs) -> str:
    """The SavedModel version the e2e runs pushed (the retrain's): what the serving tests serve."""
    return pipeline_runs[1].pushed_path


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
