"""The whole pipeline on Beam's PortableRunner: Beam's own Python job service, and SDK workers
from the project's worker pool (environment_type EXTERNAL), both started here on 127.0.0.1.

This is the SDK-harness path Flink, Spark and Dataflow runner v2 use: ExampleGen's custom
executor, TFDV, TFT (the module code by dotted path) and TFMA run in worker processes the pool
starts, not in this process. Checked: the run is blessed and pushed, every Beam component's job
asked the pool for its worker, and nothing is left running after the services stop. (Beam's
Python job service asks for one SDK worker per job, whatever the options: embedconfig/beam_profiles.py.)
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import write_synthetic
from pipeline.local_runner import run_locally
from tests.helpers.beam_services import start_job_service, start_worker_pool
from tests.helpers.configs import synthetic_raw_config

pytestmark = pytest.mark.e2e

BEAM_COMPONENTS = ("ExampleGen", "StatisticsGen", "Transform", "Evaluator")


def test_whole_pipeline_on_the_portable_runner_with_an_external_worker_pool(tmp_path: Path) -> None:
    write_synthetic(str(tmp_path / "data"), rows=3000, seed=0)
    raw = synthetic_raw_config(tmp_path, tmp_path / "data", name="embedpipe-portable")
    raw["training"]["epochs"] = 2
    job_service = start_job_service(tmp_path)
    pool = start_worker_pool(tmp_path)
    try:
        raw["beam"] = {"runner": "portable", "options": {"job_endpoint": job_service.address, "environment_config": pool.address}}
        config = parse_config(raw)
        assert "--runner=PortableRunner" in config.beam_args and "--environment_type=EXTERNAL" in config.beam_args
        out = io.StringIO()
        summary = run_locally(config, out=out)
    finally:
        pool.stop()
        job_service.stop()
    assert summary.blessed and summary.pushed, summary.render()
    assert summary.metrics["auc"] >= 0.65
    for component in BEAM_COMPONENTS:
        assert f"{component} done" in out.getvalue()
    # Beam's pool logs one line per worker it starts: one per Beam job, booted by embedpipe-beam-worker
    started = re.findall(r"Starting worker with command \['[^']*embedpipe-beam-worker'", pool.log.read_text())
    assert len(started) == len(BEAM_COMPONENTS), pool.log.read_text()[-3000:]
    assert not pool.group_alive() and not job_service.group_alive(), "no worker or service left running"
