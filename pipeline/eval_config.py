"""The TFMA EvalConfig the Evaluator gates on, built from the config's ``evaluation`` section.

Metrics are computed on the overall slice and on each of ``evaluation.slices``; thresholds (value
and no-regression) apply to the overall slice only. TFMA 0.47 applies a ``MetricConfig.threshold``
to *every* slice (metrics_validator.validate_metrics checks a threshold without a slicing spec on
each non-cross slice), so one poor slice would un-bless the model; a ``per_slice_thresholds``
entry whose spec is the overall ``SlicingSpec()`` matches the overall slice only
(``SingleSliceSpec.is_slice_applicable`` of an empty spec is true for the slice key ``()`` alone).

Only the configured metrics are computed: TFMA's default would add the metrics the Keras model was
compiled with (its loss and accuracy), which makes TFMA load the model as a Keras model and run
Keras metric objects in its combiners: on the small test model's eval split the Evaluator
executor took about twice as long with them, with the same AUC, accuracy and calibration
(bench/RESULTS.md, "What made the cold run faster (measured side by side)"). ``BinaryCrossentropy``
in ``evaluation.metrics`` gives the loss.

The model is evaluated as a generic SavedModel (``model_type: tf_generic``), through the same
signatures TF Serving serves: left unset, TFMA loads the model with ``tf.keras.models.load_model``
once to guess its type and again in its prediction step, rebuilding every Keras layer both times,
where ``tf_generic`` loads it once with ``tf.saved_model.load``.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from embedconfig.config import HIGHER_IS_BETTER, LABEL_KEY, EvaluationConfig
from models.signatures import OUTPUT_KEY, SERVING_DEFAULT, TRANSFORM_FEATURES

# A drop of exactly 0 must still pass "no regression"; TFMA compares with a strict bound.
_SMALLEST_TOLERANCE = 1e-10
# What the run summary needs to rank slices: each slice's size, and its mean label to leave out
# slices with one class only, where TFMA reports an AUC of 0 (its Riemann sum over NaN rates).
SLICE_METRICS = ("ExampleCount", "MeanLabel")


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


def slicing_specs(evaluation: EvaluationConfig) -> list[tfma.SlicingSpec]:
    """The overall slice first, then one spec per configured slice (its raw feature names)."""
    return [tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=list(names)) for names in evaluation.slices]


def metric_names(evaluation: EvaluationConfig) -> list[str]:
    """The configured metrics, plus what ranking slices needs when there are slices."""
    extra = [m for m in SLICE_METRICS if m not in evaluation.metrics] if evaluation.slices else []
    return list(evaluation.metrics) + extra


def make_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
    """Metrics, slices and overall-slice thresholds; raw eval examples are scored through
    ``serving_default`` and their 0/1 label comes from the model's ``transform_features`` signature."""
    metrics = []
    for name in metric_names(evaluation):
        metric = tfma.MetricConfig(class_name=name)
        threshold = _threshold(name, evaluation)
        if threshold is not None:
            metric.per_slice_thresholds.add(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)
        metrics.append(metric)
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                model_type=tfma.TF_GENERIC,  # see the module docstring
                signature_name=SERVING_DEFAULT,
                label_key=LABEL_KEY,
                prediction_key=OUTPUT_KEY,
                preprocessing_function_names=[TRANSFORM_FEATURES],
            )
        ],
        slicing_specs=slicing_specs(evaluation),
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
        options=tfma.Options(include_default_metrics={"value": False}),  # see the module docstring
    )


def eval_config_json(evaluation: EvaluationConfig) -> str:
    """The EvalConfig as the JSON string TFX stores (a Kubeflow run-time parameter's value)."""
    from google.protobuf import json_format

    return json_format.MessageToJson(make_eval_config(evaluation), indent=None, sort_keys=True)
