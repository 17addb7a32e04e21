"""Beam's DirectRunner in ``multi_processing`` mode gives the same results as ``in_memory``.

The Beam components run twice on the same data, once per mode, through their real executors:
the project's ExampleGen (which writes pieces of a file from whichever worker reads them), TFX's
Transform (TFT) and Evaluator (TFMA). The Evaluator scores one model, trained once (the
session's small model), so any difference comes from Beam. Compared: the examples (as
multisets, per split), the vocabulary files byte for byte, the transformed examples, and the
eval metrics. (StatisticsGen is TFX's own and left out: each multi_processing Beam job starts
two workers that import TensorFlow.)
"""

from __future__ import annotations

import collections

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.types import artifact_utils
from tfx.utils import io_utils

from embedconfig.beam_profiles import beam_args_for
from embedconfig.config import SPLITS
from tests.helpers.example_gen import run_example_gen
from tests.helpers.executors import run_evaluator, run_transform, schema_artifact

pytestmark = pytest.mark.e2e

MODES = {
    "in_memory": list(beam_args_for("direct", {"direct_running_mode": "in_memory", "direct_num_workers": 1}).flags),
    "multi_processing": list(beam_args_for("direct", {"direct_running_mode": "multi_processing", "direct_num_workers": 2}).flags),
}


def _records(examples, split: str) -> collections.Counter:
    """The split's tf.Examples as a multiset of canonical bytes (map keys sorted: TFT's workers
    serialize the feature map in a per-process order, so raw bytes differ between processes)."""
    uri = artifact_utils.get_split_uri([examples], split)
    files = tf.io.gfile.glob(f"{uri}/*")
    return collections.Counter(tf.train.Example.FromString(r.numpy()).SerializeToString(deterministic=True)
                               for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture(scope="module")
def outputs(small_model_build, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """mode -> the Beam components' artifacts on the same data, scoring the same model.

    The ``in_memory`` side is the session's small model build (tests/helpers/small_model.py: the
    executors with the default Beam options, which are ``in_memory`` with one worker); only its
    Evaluator runs here. The ``multi_processing`` side runs ExampleGen, Transform and the
    Evaluator on the build's data."""
    work = tmp_path_factory.mktemp("beam-modes")
    built = small_model_build
    config = built.config
    results: dict[str, dict] = {"in_memory": {"examples": built.examples, "graph": built.transform_graph,
                                              "transformed": built.transformed}}
    out = work / "multi_processing"
    args = MODES["multi_processing"]
    examples = run_example_gen(config, out / "examples", beam_args=args)
    graph, transformed = run_transform(config, examples, schema_artifact(config, out / "schema"), out, beam_args=args)
    results["multi_processing"] = {"examples": examples, "graph": graph, "transformed": transformed}
    for mode, args in MODES.items():
        evaluation, blessing = run_evaluator(config, results[mode]["examples"], built.model, work / mode, beam_args=args)
        results[mode].update(evaluation=evaluation, blessing=blessing)
    return results


@pytest.mark.parametrize("split", SPLITS)
def test_examples_and_transformed_examples_are_the_same(outputs, split: str) -> None:
    a, b = outputs["in_memory"], outputs["multi_processing"]
    raw = _records(a["examples"], split)
    assert raw and raw == _records(b["examples"], split), "ExampleGen: same examples in the same splits"
    transformed = _records(a["transformed"], split)
    assert sum(transformed.values()) == sum(raw.values())
    assert transformed == _records(b["transformed"], split), "Transform: same transformed examples"


def test_vocabularies_are_byte_identical(outputs) -> None:
    def vocabularies(graph) -> dict[str, bytes]:
        assets = f"{graph.uri}/transform_fn/assets"
        return {name: io_utils.read_bytes_file(f"{assets}/{name}") for name in tf.io.gfile.listdir(assets)}

    a, b = (vocabularies(outputs[m]["graph"]) for m in MODES)
    assert a and a == b


def test_eval_metrics_are_the_same(outputs) -> None:
    def metrics(evaluation) -> dict[str, float]:
        result = tfma.load_eval_result(evaluation.uri)
        (_, overall), = [s for s in result.slicing_metrics if s[0] == ()]
        # doubleValue is a float, or a string for NaN / Infinity (JSON has no literal for them)
        return {name: float(value["doubleValue"]) for name, value in overall[""][""].items() if "doubleValue" in value}

    a, b = (metrics(outputs[m]["evaluation"]) for m in MODES)
    assert a["example_count"] > 0 and set(a) == set(b)
    # the configured metrics only, not the Keras model's compiled loss and accuracy (pipeline/eval_config.py)
    assert set(a) == {"example_count", "auc", "binary_accuracy", "precision", "recall", "calibration"}
    for name in a:
        assert b[name] == pytest.approx(a[name], rel=1e-6, abs=1e-9, nan_ok=True), name
    assert len({tf.io.gfile.exists(f"{outputs[m]['blessing'].uri}/BLESSED") for m in MODES}) == 1, "same blessing"
