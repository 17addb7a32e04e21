"""The built-in example's config, pointed into a temp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_YAML = REPO / "configs" / "synthetic.yaml"


def synthetic_raw_config(work: Path, data_path: Path, name: str = "embedpipe-test") -> dict[str, Any]:
    """configs/synthetic.yaml as a dict, with data, artifacts and pushes under ``work``."""
    raw = yaml.safe_load(SYNTHETIC_YAML.read_text())
    raw["pipeline"] = {"name": name, "root": str(work / "root"), "metadata_path": str(work / "metadata.sqlite")}
    raw["data"]["path"] = str(data_path)
    raw["schema"] = str(REPO / "schema" / "synthetic.pbtxt")
    raw["push"]["base_directory"] = str(work / "serving")
    return raw
