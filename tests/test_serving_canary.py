"""The ServingCanary component: a live server on the candidate model blesses it, or refuses it with the reason.

The model is the small one of tests/helpers/small_model.py (session fixture); each canary run starts the
real ``python -m serving.server`` in a subprocess, as the pipeline does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx.components.util import model_utils
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.serving_canary import ServingCanary, _wait_available, run_canary, write_warmup_requests
from serving.servable import WARMUP_FILE
from tests.helpers.synthetic_requests import SERIALIZED

pytestmark = pytest.mark.serving


@pytest.fixture
def own_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The canary's scratch files go here, so a test can check none are left behind."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def test_a_model_that_serves_like_it_scores_passes_and_warmup_requests_are_written(small_model: str, tmp_path: Path, own_tempdir: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    warmup = write_warmup_requests(str(model), SERIALIZED, "m")
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log", "classify_log"]
    assert logs[0].predict_log.request.model_spec.signature_name == "serving_default"
    assert tf.make_ndarray(logs[0].predict_log.request.inputs["examples"]).tolist() == SERIALIZED
    assert len(logs[1].classify_log.request.input.example_list.examples) == len(SERIALIZED)

    report = run_canary(str(model), SERIALIZED, "m", tolerance=1e-5, timeout=120, scratch=str(tmp_path / "base"))

    assert report["problems"] == []
    assert report["max_abs_diff"] <= 1e-5 and report["ready_seconds"] > 0 and report["examples"] == len(SERIALIZED)
    assert "AVAILABLE" in report["server_log"]  # the server's own log, kept for a failed canary's message
    assert list(own_tempdir.iterdir()) == [] and not (tmp_path / "base").exists()


def test_a_model_that_does_not_load_is_refused_not_raised(tmp_path: Path, own_tempdir: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")

    report = run_canary(str(broken), SERIALIZED, "m", tolerance=1e-5, timeout=30, scratch=str(tmp_path / "base"))

    assert len(report["problems"]) == 1 and report["problems"][0].startswith("the model does not run in-process")
    assert report["max_abs_diff"] is None


def test_a_server_that_is_not_ready_in_time_is_refused_and_cleaned_up(small_model: str, tmp_path: Path, own_tempdir: Path) -> None:
    report = run_canary(small_model, SERIALIZED, "m", tolerance=1e-5, timeout=0, scratch=str(tmp_path / "base"))

    assert report["problems"] == ["the model server failed: the model was not AVAILABLE within 0 s"]
    # the served copy and the server log are gone, the server killed
    assert list(own_tempdir.iterdir()) == [] and not (tmp_path / "base").exists()


class _StatusOnly:
    """A client whose GetModelStatus says version 1 is in ``state``."""

    def __init__(self, state: str) -> None:
        self.state = state

    def versions(self) -> dict[int, str]:
        return {1: self.state}


class _Running:
    def poll(self) -> None:
        return None


def test_waiting_stops_at_once_when_the_server_reports_the_load_failed() -> None:
    with pytest.raises(RuntimeError, match=r"could not load the model \(GetModelStatus: END\)"):
        _wait_available(_StatusOnly("END"), _Running(), timeout=60)
    _wait_available(_StatusOnly("AVAILABLE"), _Running(), timeout=60)


def _artifact(kind, uri: Path):
    artifact = kind()
    uri.mkdir(parents=True, exist_ok=True)
    artifact.uri = str(uri)
    return artifact


def _run_component(small_model: str, tmp_path: Path, *, evaluator_blessed: bool, tolerance: float):
    """Run ServingCanary's executor as the pipeline would; (InfraBlessing, warmed Model) artifacts."""
    model = _artifact(standard_artifacts.Model, tmp_path / "model")
    shutil.copytree(small_model, Path(path_utils.serving_model_dir(model.uri)))
    model_blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "model_blessing")
    model_blessing.set_int_custom_property("blessed", int(evaluator_blessed))
    examples = _artifact(standard_artifacts.Examples, tmp_path / "examples")
    (Path(examples.uri) / "Split-eval").mkdir()
    with tf.io.TFRecordWriter(str(Path(examples.uri) / "Split-eval" / "data.gz"), options="GZIP") as writer:
        for record in SERIALIZED:
            writer.write(record)
    blessing = _artifact(standard_artifacts.InfraBlessing, tmp_path / "blessing")
    warmed = _artifact(standard_artifacts.Model, tmp_path / "warmed")
    ServingCanary.EXECUTOR_SPEC.executor_class().Do(
        {"model": [model], "model_blessing": [model_blessing], "examples": [examples]},
        {"blessing": [blessing], "warmed_model": [warmed]},
        {"model_name": "m", "num_examples": 4, "tolerance": tolerance, "timeout_seconds": 120},
    )
    return blessing, warmed


def test_component_refuses_a_model_whose_served_scores_differ(small_model: str, tmp_path: Path) -> None:
    # No score can be within a negative tolerance: the comparison itself must refuse the model.
    blessing, warmed = _run_component(small_model, tmp_path, evaluator_blessed=True, tolerance=-1.0)

    assert not model_utils.is_infra_validated(blessing)  # the check TFX's Pusher makes before pushing
    reason = (Path(blessing.uri) / "INFRA_NOT_BLESSED").read_text()
    assert reason.startswith("served scores differ from in-process scores") and "(> -1)" in reason
    assert not (Path(blessing.uri) / "INFRA_BLESSED").exists()
    assert (Path(path_utils.serving_model_dir(warmed.uri)) / WARMUP_FILE).exists()


def test_component_skips_a_model_the_evaluator_did_not_bless(small_model: str, tmp_path: Path) -> None:
    blessing, warmed = _run_component(small_model, tmp_path, evaluator_blessed=False, tolerance=1e-5)

    assert blessing.get_int_custom_property("blessed") == 0
    assert (Path(blessing.uri) / "INFRA_NOT_BLESSED").read_text().startswith("skipped: the Evaluator did not bless")
    assert not (Path(path_utils.serving_model_dir(warmed.uri))).exists()
