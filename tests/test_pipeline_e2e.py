"""End to end through the real LocalDagRunner, Beam DirectRunner and TFX components.

One module-scoped run on synthetic data (blessed and pushed), a second run that reuses cached
upstream results and is compared with the blessed baseline, and a run over bad data that the
schema gate stops before Transform. The first run also shows that the Evaluator's split is one the
Trainer never read, and that slices are reported.
"""

from __future__ import annotations

import copy
import glob
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from embedconfig.config import parse_config
from pipeline.datasets.synthetic import write_synthetic
from pipeline.local_runner import run_locally
from tests.helpers.configs import REPO, synthetic_raw_config

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """Three runs of the built-in example: (config, first summary, second summary (a retrain),
    progress output of the first run, third summary (the second run's config again))."""
    work = tmp_path_factory.mktemp("e2e")
    write_synthetic(str(work / "data"), rows=6000, seed=0)
    raw = synthetic_raw_config(work, work / "data")
    raw["evaluation"]["slices"] = [["target_categories"]]
    first_out = io.StringIO()
    first = run_locally(parse_config(raw), out=first_out)
    second_raw = copy.deepcopy(raw)
    second_raw["training"]["seed"] = 1  # a retrain: the Trainer runs again, upstream is cached
    second = run_locally(parse_config(second_raw), out=io.StringIO())
    third = run_locally(parse_config(second_raw), out=io.StringIO())
    return parse_config(raw), first, second, first_out.getvalue(), third


def test_first_run_is_blessed_and_pushed(runs) -> None:
    config, first, _, progress, _ = runs
    assert first.blessed is True, first.render()
    assert first.metrics["auc"] >= 0.65 and first.metrics["example_count"] > 0
    assert first.pushed and first.pushed_path.startswith(config.push.model_directory)
    version = os.path.basename(first.pushed_path)
    assert version.isdigit(), "TF Serving layout: <base>/<model>/<integer version>/"
    assert os.path.isfile(os.path.join(first.pushed_path, "saved_model.pb"))
    info = os.path.join(first.pushed_path, "assets.extra", "embedpipe")
    for name in ("model_summary.txt", "config.json", "training.json"):
        assert os.path.isfile(os.path.join(info, name))
    with open(os.path.join(info, "training.json")) as f:
        training = json.load(f)
    assert 1 <= training["epochs_run"] <= config.training.epochs and training["train_seconds"] > 0
    assert len(training["history"]["val_auc"]) == training["epochs_run"] and training["steps"] > 0
    assert "[1/12] ExampleGen ..." in progress and "ServingCanary done" in progress and "Pusher done" in progress
    assert "blessed: yes" in first.render() and "pushed: " in first.render()
    assert first.infra_blessed is True and "serving canary: passed" in first.render()
    warmup = os.path.join(first.pushed_path, "assets.extra", "tf_serving_warmup_requests")
    assert os.path.getsize(warmup) > 0, "the pushed model carries the canary's warmup requests"


def _split_size(root: str, split: str) -> int:
    """Examples in ExampleGen's ``split`` (one ExampleGen execution: later runs are cached)."""
    files = glob.glob(os.path.join(root, "ExampleGen", "examples", "*", f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_the_evaluator_gates_on_a_split_the_trainer_never_read(runs) -> None:
    """Issue 15: selection (early stopping) on validation, the blessing on eval, nothing shared."""
    config, first, _, _, _ = runs
    with open(os.path.join(first.pushed_path, "assets.extra", "embedpipe", "training.json")) as f:
        training = json.load(f)
    read = training["train_files"] + training["validation_files"]
    assert read and not any("Split-eval" in path for path in read), read
    assert all("Split-train" in path for path in training["train_files"])
    assert training["validation_files"] and all("Split-validation" in path for path in training["validation_files"])
    sizes = {split: _split_size(config.pipeline.root, split) for split in ("train", "validation", "eval")}
    assert len(set(sizes.values())) == 3 and sum(sizes.values()) == 6000, sizes
    assert first.metrics["example_count"] == sizes["eval"], "TFMA evaluated Split-eval and nothing else"


def test_the_summary_ranks_slices_with_their_example_counts(runs) -> None:
    _, first, _, _, _ = runs
    ranking = first.slices
    assert ranking is not None and ranking.metric == "auc" and len(ranking.slices) >= 6, first.render()
    for s in ranking.slices:  # raw values (not vocabulary ids) of the sliced feature
        assert re.fullmatch(r"target_categories=(cat_\d+|tag_\d)", s.name) and s.examples > 0, s
    assert [s.value for s in ranking.slices] == sorted((s.value for s in ranking.slices), reverse=True)
    assert "slices by auc" in first.render() and "examples)" in first.render()
    assert first.blessed, "the slices are reported, not gated"


def test_pushed_model_scores_raw_examples_in_a_fresh_process(runs) -> None:
    _, first, _, _, _ = runs
    result = subprocess.run(
        [sys.executable, str(HERE / "helpers" / "score_pushed_model.py"), first.pushed_path],
        capture_output=True, text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"serving_default", "predict_raw", "classify", "transform_features"} <= set(scores["signatures"])
    default = scores["serving_default"]
    assert len(default) == 3 and all(0.0 < p < 1.0 for p in default)
    assert scores["predict_raw"] == pytest.approx(default, abs=1e-6), "raw-tensor signature agrees"
    assert [s[1] for s in scores["classify_scores"]] == pytest.approx(default, abs=1e-6)
    assert scores["classify_classes"][0] == ["0", "1"]


def test_second_run_reuses_cache_and_compares_with_the_baseline(runs) -> None:
    _, first, second, _, _ = runs
    assert {"ExampleGen", "StatisticsGen", "Transform"} <= set(second.cached_components)
    assert "Trainer" not in second.cached_components
    assert second.baseline_metrics.get("auc") == pytest.approx(first.metrics["auc"], abs=1e-6)
    assert second.blessed is not None
    if second.blessed:
        assert second.pushed_path != first.pushed_path
    else:
        assert any("against the last blessed model" in f for f in second.failures), second.failures


def test_rerun_with_nothing_changed_is_cached_through_to_the_pusher(runs) -> None:
    """The baseline is the last blessed model other than the candidate (components/baseline_strategy.py):
    rerunning the same config gives the Evaluator the inputs it had, so nothing evaluates the model
    against itself, and the canary and the Pusher are cached too."""
    _, _, second, _, third = runs
    assert {"ExampleGen", "StatisticsGen", "Transform", "Trainer", "Evaluator", "ServingCanary", "Pusher"} <= set(third.cached_components)
    assert third.metrics == second.metrics and third.baseline_metrics == second.baseline_metrics
    assert (third.blessed, third.pushed_path) == (second.blessed, second.pushed_path)


def test_bad_data_stops_at_the_schema_gate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_synthetic(str(data), rows=300, seed=3)
    rows = [json.loads(line) for line in (data / "examples.jsonl").read_text().splitlines()]
    for row in rows[::3]:
        del row["target"]  # a required feature missing from a third of the rows
    (data / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = parse_config(synthetic_raw_config(tmp_path, data, name="embedpipe-bad"))
    out = io.StringIO()
    with pytest.raises(Exception) as info:
        run_locally(config, out=out)
    assert "feature 'target'" in str(info.value), str(info.value)
    assert "Transform ..." not in out.getvalue(), "nothing runs after the gate"


def test_a_label_of_2_under_a_bool_domain_stops_at_the_schema_gate(tmp_path: Path) -> None:
    """A hand-written schema may say bool_domain on the INT label: StatisticsGen then computes it as
    categorical and ExampleValidator lets a 2 through; the gate names it (issue 14, item 9)."""
    data = tmp_path / "data"
    write_synthetic(str(data), rows=300, seed=3)
    rows = [json.loads(line) for line in (data / "examples.jsonl").read_text().splitlines()]
    rows[7]["clicked"] = 2
    (data / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    schema_text = (REPO / "schema" / "synthetic.pbtxt").read_text()
    curated = "int_domain {\n    min: 0\n    max: 1\n  }"
    assert curated in schema_text
    (tmp_path / "bool.pbtxt").write_text(schema_text.replace(curated, "bool_domain {\n  }", 1))
    raw = synthetic_raw_config(tmp_path, data, name="embedpipe-bool-label")
    raw["schema"] = str(tmp_path / "bool.pbtxt")
    out = io.StringIO()
    with pytest.raises(Exception) as info:
        run_locally(parse_config(raw), out=out)
    assert "feature 'clicked': values 2 seen, but the schema declares bool_domain" in str(info.value), str(info.value)
    assert "Transform ..." not in out.getvalue(), "nothing runs after the gate"
