"""A dataset the project has never seen runs with nothing but a new config file, on Beam's
portable runner.

The user's flow, through the CLI: write a config, `embedpipe schema infer`, `embedpipe run`. The
config sends Beam to Beam's own Python job service with the project's SDK worker pool
(``environment_type: EXTERNAL``), both started here on 127.0.0.1. That is the SDK-harness path
Flink, Spark and Dataflow runner v2 use: ExampleGen's custom executor, TFDV, TFT (the module code
by dotted path) and TFMA run in worker processes the pool starts, not in the CLI's process.
Checked: the run is blessed and pushed, every Beam component's job asked the pool for its
worker, and nothing is left running after the services stop. (Beam's Python job service asks
for one SDK worker per job, whatever the options: embedconfig/beam_profiles.py.)

One run covers both stories: as two tests they were two whole pipeline runs
(bench/RESULTS.md, "The test suite's own time"), with the same components and checks.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.beam_services import start_job_service, start_worker_pool

pytestmark = pytest.mark.e2e

CONFIG = {
    "pipeline": {"name": "shop"},
    "data": {"format": "jsonl", "path": "data/orders.jsonl", "split": {"hash_buckets": {"train": 3, "validation": 1, "eval": 1}}},
    "schema": "schema.pbtxt",
    "features": [
        {"name": "viewed_products", "kind": "sequence", "dtype": "string", "max_length": 6, "embedding_dim": 4},
        {"name": "product", "kind": "id", "dtype": "string", "embedding_dim": 4, "share_embedding_with": "viewed_products"},
        {"name": "brand", "kind": "id", "dtype": "int", "embedding_dim": 2},
    ],
    "label": {"name": "bought", "dtype": "string", "positive_if": "== yes"},
    "model": {"type": "pooled", "pooling": "max", "hidden_units": [8]},
    "training": {"batch_size": 64, "epochs": 3, "learning_rate": 0.01},
    "evaluation": {"value_thresholds": {"AUC": {"lower_bound": 0.55}}},
}
BEAM_COMPONENTS = ("ExampleGen", "StatisticsGen", "Transform", "Evaluator")


def _write_orders(path: Path, rows: int) -> None:
    rng = random.Random(7)
    path.parent.mkdir(parents=True)
    with path.open("w") as f:
        for _ in range(rows):
            viewed = [f"p{rng.randrange(40)}" for _ in range(rng.randint(0, 9))]
            product = rng.choice(viewed) if viewed and rng.random() < 0.5 else f"p{rng.randrange(40)}"
            brand = rng.randrange(5)
            # a main effect (brand) any model learns in a few steps, and an interaction (the product
            # was viewed): with the interaction alone, AUC on 300 eval rows swung around the gate
            # from one split or example order to the next (0.52 against 0.55, measured)
            bought = "yes" if rng.random() < (0.7 if brand < 2 else 0.3) + (0.2 if product in viewed else -0.2) else "no"
            f.write(json.dumps({"viewed_products": viewed, "product": product, "brand": brand, "bought": bought}) + "\n")


def _embedpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=600)


def test_new_jsonl_dataset_runs_from_a_new_config_on_the_portable_runner(tmp_path: Path) -> None:
    _write_orders(tmp_path / "data" / "orders.jsonl", 1500)
    job_service = start_job_service(tmp_path)
    pool = start_worker_pool(tmp_path)
    try:
        config = tmp_path / "shop.yaml"
        beam = {"runner": "portable", "options": {"job_endpoint": job_service.address, "environment_config": pool.address}}
        config.write_text(yaml.safe_dump({**CONFIG, "beam": beam}))

        inferred = _embedpipe("schema", "infer", "--config", str(config))
        assert inferred.returncode == 0, inferred.stderr[-2000:]
        assert (tmp_path / "schema.pbtxt").is_file()

        run = _embedpipe("run", "--config", str(config))
    finally:
        pool.stop()
        job_service.stop()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "--runner=PortableRunner" in run.stdout and "--environment_type=EXTERNAL" in run.stdout, run.stdout[:2000]
    assert "blessed: yes" in run.stdout and "pushed: " in run.stdout
    assert list((tmp_path / "runs" / "shop" / "serving" / "shop").iterdir()), "a version was pushed"
    for component in BEAM_COMPONENTS:
        assert f"{component} done" in run.stdout
    # Beam's pool logs one line per worker it starts: one per Beam job, booted by embedpipe-beam-worker
    started = re.findall(r"Starting worker with command \['[^']*embedpipe-beam-worker'", pool.log.read_text())
    assert len(started) == len(BEAM_COMPONENTS), pool.log.read_text()[-3000:]
    assert not pool.group_alive() and not job_service.group_alive(), "no worker or service left running"


def test_config_error_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = {**CONFIG, "model": {"type": "transformer"}}
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(bad))
    run = _embedpipe("run", "--config", str(config))
    assert run.returncode == 2
    assert "config field 'model.type': 'transformer' is not allowed" in run.stderr
