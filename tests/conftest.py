"""Shared fixtures: configs that point every path of the built-in example into a temp dir."""

from __future__ import annotations

import copy
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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
