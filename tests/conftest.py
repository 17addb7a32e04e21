"""Shared fixtures (a config to mutate, the small model, the S3 server) and the test tiers.

Tiers (pyproject.toml's markers): ``e2e`` runs the pipeline, ``serving`` starts model servers,
every other test is ``unit``. ``make test`` runs them all; ``pytest -m unit`` answers in about
a minute."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

import embedconfig  # noqa: F401 -- TF_USE_LEGACY_KERAS=1 before TensorFlow is imported anywhere
from tests.helpers.configs import synthetic_raw_config


@pytest.fixture
def raw_config(tmp_path: Path) -> dict[str, Any]:
    """A valid raw config dict to mutate in tests."""
    return copy.deepcopy(synthetic_raw_config(tmp_path, tmp_path / "data"))


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """A local S3-API server for the session; this process reaches it through tf.io.gfile and boto3.

    The standard AWS variables point at it (subprocesses get them from ``s3.env()``); restored after.
    """
    from storage import configure_s3_environment, enable_object_storage
    from tests.helpers.s3_server import start_s3_server

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
def small_model_build(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """A small model of this project exported as the pipeline exports it, with the canary's warmup
    file, and the artifacts it was built from (tests/helpers/small_model.py). Built once per
    session: under xdist the first worker builds it in the session's shared temp dir while the
    other waits (pytest-xdist's recipe for session fixtures; the serving files and
    tests/test_beam_modes.py use it, on both workers)."""
    import fcntl

    from tests.helpers.small_model import SmallModel, build_small_model

    if worker_id == "master":  # not under xdist
        return build_small_model(tmp_path_factory.mktemp("small_model"))
    shared = tmp_path_factory.getbasetemp().parent  # pytest-NN/, one per session, above popen-gwN/
    with open(shared / "small_model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = shared / "small_model.done"
        if not done.exists():
            (shared / "small_model").mkdir(exist_ok=True)  # a failed build on the other worker left it
            build_small_model(shared / "small_model")
            done.touch()
        return SmallModel(shared / "small_model")


@pytest.fixture(scope="session")
def small_model(small_model_build) -> str:
    """The small model's SavedModel directory: what the serving tests serve."""
    return small_model_build.saved_model


@pytest.fixture(scope="module")
def late_data(tmp_path_factory: pytest.TempPathFactory):
    """The late-signal data through ExampleGen (and Transform on first use), once per test module
    (tests/test_model_variants_learn.py; tests/helpers/late_variants.py)."""
    from tests.helpers.late_variants import make_late_data

    return make_late_data(tmp_path_factory)


TIERS = ("unit", "serving", "e2e")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The longest test files, longest first (by a fresh-clone suite's per-file seconds:
# bench/RESULTS.md, "The test suite's own time").
# With --dist loadfile --no-loadscope-reorder, pytest-xdist hands whole files to its workers in
# collection order. Its default order (files with the most tests first) started these last, and one
# worker ran alone at the end; longest first, the two workers finish within a short file of each other.
LONGEST_FIRST = ("test_kubeflow.py", "test_pipeline_e2e.py", "test_beam_modes.py", "test_new_dataset.py", "test_daily_runs.py",
                 "test_model_variants_learn.py", "test_serving.py", "test_tf_serving_cases.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test not marked ``serving`` or ``e2e`` is a unit test: ``pytest -m unit`` runs it.
    The longest files go first (LONGEST_FIRST); the sort is stable, so tests keep their order in a file."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.unit)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
