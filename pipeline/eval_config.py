"""The TFMA EvalConfig the Evaluator gates on, built from the config's ``evaluation`` section."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from embedconfig.config import HIGHER_IS_BETTER, LABEL_KEY, EvaluationConfig
from models.signatures import OUTPUT_KEY, SERVING_DEFAULT, TRANSFORM_FEATURES

# A drop of exactly 0 must still pass "no regression"; TFMA compares with a strict bound.
_SMALLEST_TOLERANCE = 1e-10


def _threshold(metric: str, evaluation: EvaluationConfig) -> tfma.MetricThreshold | None:
    bounds = evaluation.value_thresholds.get(metric)
    tolerance = evaluation.no_regression.get(metric)
    if bounds is None and tolerance is None:
        return None
    threshold = tfma.MetricThreshold()
    if bounds is not None:
        threshold.value_threshold.CopyFrom(
            tfma.GenericValueThreshold(**{k: {"value": v} for k, v in bounds.items()})
        )
    if tolerance is not None:
        higher = metric in HIGHER_IS_BETTER
        allowed = max(tolerance, _SMALLEST_TOLERANCE)
        threshold.change_threshold.CopyFrom(
            tfma.GenericChangeThreshold(
                direction=tfma.MetricDirection.HIGHER_IS_BETTER if higher else tfma.MetricDirection.LOWER_IS_BETTER,
                absolute={"value": -allowed if higher else allowed},
            )
        )
    return threshold


def make_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
    """Metrics and thresholds; raw eval examples are scored through ``serving_default`` and their
    0/1 label comes from the model's ``transform_features`` signature."""
    metrics = []
    for name in evaluation.metrics:
        metric = tfma.MetricConfig(class_name=name)
        threshold = _threshold(name, evaluation)
        if threshold is not None:
            metric.threshold.CopyFrom(threshold)
        metrics.append(metric)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=SERVING_DEFAULT,
                label_key=LABEL_KEY,
                prediction_key=OUTPUT_KEY,
                preprocessing_function_names=[TRANSFORM_FEATURES],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def eval_config_json(evaluation: EvaluationConfig) -> str:
    """The EvalConfig as the JSON string TFX stores (a Kubeflow run-time parameter's value)."""
    from google.protobuf import json_format

    return json_format.MessageToJson(make_eval_config(evaluation), indent=None, sort_keys=True)
