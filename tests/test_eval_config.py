"""The Evaluator's EvalConfig: slices are reported, only the overall slice is gated.

The gating is checked with TFMA's own validator (``metrics_validator.validate_metrics``, what the
Evaluator runs per slice), on the EvalConfig as TFX's Evaluator rewrites it before it runs.
"""

from __future__ import annotations

import math

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.evaluators import metrics_validator
from tensorflow_model_analysis.utils import model_util

from embedconfig.config import parse_config
from pipeline.eval_config import make_eval_config
from pipeline.run_summary import SLICES_SHOWN, rank_slices

SLICE = (("target_categories", b"cat_3"),)
OVERALL = ()


@pytest.fixture
def evaluation(raw_config: dict):
    raw_config["evaluation"]["slices"] = [["target_categories"], ["user", "target"]]
    return parse_config(raw_config).evaluation


def _validate(eval_config: tfma.EvalConfig, slice_key: tuple, auc: float, has_baseline: bool, change: float = 0.0) -> bool:
    """TFMA's verdict on one slice whose gated metrics are ``auc`` and their changes against the
    baseline ``change``, on the EvalConfig as the Evaluator rewrites and checks it."""
    config = tfma.utils.update_eval_config_with_defaults(eval_config, has_baseline=has_baseline, rubber_stamp=True)
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(config.metrics_specs, eval_config=config)
    assert any(key.is_diff for key in thresholds) == has_baseline, "no-regression is checked only with a baseline"
    metrics = {key: change if key.is_diff else auc for key in thresholds}
    return metrics_validator.validate_metrics((slice_key, metrics), config).validation_ok


def test_slicing_specs_are_the_overall_slice_and_the_configured_ones(evaluation) -> None:
    specs = make_eval_config(evaluation).slicing_specs
    assert [list(s.feature_keys) for s in specs] == [[], ["target_categories"], ["user", "target"]]


def test_thresholds_are_on_the_overall_slice_only(evaluation) -> None:
    metrics = make_eval_config(evaluation).metrics_specs[0].metrics
    assert not any(m.HasField("threshold") for m in metrics), "a plain threshold would gate every slice"
    (auc,) = [m for m in metrics if m.class_name == "AUC"]
    (overall,) = auc.per_slice_thresholds
    assert list(overall.slicing_specs) == [tfma.SlicingSpec()]
    assert overall.threshold.value_threshold.lower_bound.value == evaluation.value_thresholds["AUC"]["lower_bound"]
    assert overall.threshold.change_threshold.absolute.value == -evaluation.no_regression["AUC"]


@pytest.mark.parametrize("has_baseline", [False, True])
def test_a_poor_slice_does_not_unbless_but_a_poor_overall_does(evaluation, has_baseline: bool) -> None:
    config = make_eval_config(evaluation)
    assert _validate(config, SLICE, 0.3, has_baseline), "slices are reported, not gated"
    assert not _validate(config, OVERALL, 0.3, has_baseline)
    assert _validate(config, OVERALL, 0.9, has_baseline)


def test_a_slice_that_regressed_does_not_unbless_but_the_overall_slice_does(evaluation) -> None:
    config = make_eval_config(evaluation)
    assert _validate(config, SLICE, 0.9, has_baseline=True, change=-0.5)
    assert not _validate(config, OVERALL, 0.9, has_baseline=True, change=-0.5)


def test_tfma_would_gate_every_slice_with_a_plain_threshold(evaluation) -> None:
    """Why per_slice_thresholds: TFMA 0.47 checks a MetricConfig.threshold on every slice."""
    config = make_eval_config(evaluation)
    for metric in config.metrics_specs[0].metrics:
        if metric.per_slice_thresholds:
            metric.threshold.CopyFrom(metric.per_slice_thresholds[0].threshold)
            del metric.per_slice_thresholds[:]
    assert not _validate(config, SLICE, 0.3, has_baseline=False)


def test_slices_bring_the_metrics_their_ranking_needs(raw_config: dict, evaluation) -> None:
    names = [m.class_name for m in make_eval_config(evaluation).metrics_specs[0].metrics]
    assert "ExampleCount" in names and "MeanLabel" in names and names.count("ExampleCount") == 1
    raw_config["evaluation"]["metrics"] = ["AUC"]
    raw_config["evaluation"].pop("slices", None)
    names = [m.class_name for m in make_eval_config(parse_config(raw_config).evaluation).metrics_specs[0].metrics]
    assert names == ["AUC"], "no slices: only the configured metrics"


def test_slices_rank_by_the_gated_metric_with_counts_leaving_out_one_class_slices() -> None:
    values = {f"target_categories=cat_{i}": {"auc": 0.5 + i / 100, "example_count": 10 + i, "mean_label": 0.4} for i in range(10)}
    values["target_categories=tag_1"] = {"auc": 0.0, "example_count": 3, "mean_label": 1.0}  # one class: AUC undefined
    values["target_categories=tag_2"] = {"auc": math.nan, "example_count": 2, "mean_label": 0.5}
    ranking = rank_slices(values, "auc")
    assert [s.name for s in ranking.slices[:2]] == ["target_categories=cat_9", "target_categories=cat_8"]
    assert ranking.slices[-1].name == "target_categories=cat_0" and ranking.slices[-1].examples == 10
    assert ranking.one_class == 1 and len(ranking.slices) == 10
    lines = ranking.render()
    assert lines[0] == "slices by auc (10 slices; 1 with one class only left out):"
    assert len(lines) == 1 + 2 * SLICES_SHOWN + 1 and lines[1 + SLICES_SHOWN] == "  ..."
    assert "target_categories=cat_9" in lines[1] and "0.5900" in lines[1] and "(19 examples)" in lines[1]


def test_the_model_is_scored_as_a_generic_saved_model_through_serving_default(evaluation) -> None:
    (spec,) = make_eval_config(evaluation).model_specs
    # TFMA's own decision, without a model to guess from: left unset, it would try load_model on the path
    assert model_util.get_model_type(spec, model_path="/no/model/here") == tfma.TF_GENERIC
    assert spec.signature_name == "serving_default"
