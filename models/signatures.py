"""The SavedModel's signatures: raw inputs in, probability out, with Transform inside the graph.

- ``serving_default``: ``examples`` (1-D string, serialized tf.Example with the raw features, no
  label) -> ``probability`` ``[batch, 1]``.
- ``predict_raw``: one tensor per raw feature for JSON clients -> ``probability``. Sequences are
  ``[batch, max_len_in_request]`` padded with ``""`` (string) or ``-1`` (int), which are dropped;
  ids are ``[batch]``.
- ``classify``: ``inputs`` (serialized tf.Example) -> ``classes`` ``[batch, 2]`` (``"0"``, ``"1"``)
  and ``scores`` ``[batch, 2]``, the keys TF Serving's Classify API expects.
- ``regress``: ``inputs`` (serialized tf.Example) -> ``outputs`` ``[batch]``, the probability under the
  key TF Serving's Regress API expects.
- ``transform_features``: serialized tf.Example *with* the label -> ``label``, the 0/1 label
  Transform computes from the raw label column; TFMA's label. Only the label: TFMA slices on a
  transformed feature before a raw one of the same name, so returning the features' ids would
  make ``evaluation.slices`` slice on vocabulary ids instead of raw values.
Unknown tokens map to OOV ids, over-long sequences are truncated, empty ones are all padding.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from embedconfig.config import LABEL_KEY, FeatureConfig, PipelineConfig

SERVING_DEFAULT = "serving_default"
PREDICT_RAW = "predict_raw"
CLASSIFY = "classify"
REGRESS = "regress"
TRANSFORM_FEATURES = "transform_features"
OUTPUT_KEY = "probability"
RAW_PADDING = {tf.string: "", tf.int64: -1}
# What each signature returns, written down apart from the functions that return it: the check
# after tracing (check_traced_outputs) needs a yardstick the tracing cannot change.
SIGNATURE_OUTPUTS = {
    SERVING_DEFAULT: {OUTPUT_KEY},
    PREDICT_RAW: {OUTPUT_KEY},
    CLASSIFY: {"classes", "scores"},
    REGRESS: {"outputs"},
    TRANSFORM_FEATURES: {LABEL_KEY},
}


def _raw_dtype(f: FeatureConfig) -> tf.DType:
    return tf.int64 if f.dtype == "int" else tf.string


def make_signatures(model: keras.Model, tft_output: tft.TFTransformOutput, config: PipelineConfig) -> dict[str, Callable]:
    """Concrete functions to pass to ``model.save(..., signatures=...)``."""
    model.tft_layer = tft_output.transform_features_layer()  # tracked, so its assets are saved
    raw_spec = tft_output.raw_feature_spec()
    serving_spec = {f.name: raw_spec[f.name] for f in config.features}
    eval_spec = {**serving_spec, config.label.name: raw_spec[config.label.name]}
    feature_names = [f.name for f in config.features]

    # One tf.function, so the four scoring signatures call one traced graph of Transform + the
    # model (predict_raw's features have the parsed examples' structure: one trace, not four).
    # Traced once, the signatures take less time to trace and a smaller SavedModel, and one request's
    # latency does not change (the MovieLens model:
    # bench/RESULTS.md, "What made the cold run faster (measured side by side)").
    @tf.function
    def score(raw: dict[str, Any]) -> tf.Tensor:
        transformed = model.tft_layer(raw)
        return model({name: transformed[name] for name in feature_names})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_KEY: score(tf.io.parse_example(examples, serving_spec))}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        p = score(tf.io.parse_example(inputs, serving_spec))
        batch = tf.shape(p)[0]
        return {
            "classes": tf.tile(tf.constant([["0", "1"]]), [batch, 1]),
            "scores": tf.concat([1.0 - p, p], axis=1),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"outputs": score(tf.io.parse_example(inputs, serving_spec))[:, 0]}

    raw_specs = {
        f.name: tf.TensorSpec([None, None] if f.kind == "sequence" else [None], _raw_dtype(f), name=f.name)
        for f in config.features
    }
    kinds = {f.name: f.kind for f in config.features}

    @tf.function(input_signature=[raw_specs])
    def predict_raw(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        raw = {}
        for name, x in features.items():
            if kinds[name] == "sequence":
                raw[name] = tf.ragged.boolean_mask(x, tf.not_equal(x, RAW_PADDING[x.dtype])).to_sparse()
            else:
                raw[name] = x[:, tf.newaxis]
        return {OUTPUT_KEY: score(raw)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples: tf.Tensor) -> dict[str, tf.Tensor]:
        return {LABEL_KEY: model.tft_layer(tf.io.parse_example(examples, eval_spec))[LABEL_KEY]}

    return check_traced_outputs({
        SERVING_DEFAULT: serve_examples.get_concrete_function(),
        PREDICT_RAW: predict_raw.get_concrete_function(),
        CLASSIFY: classify.get_concrete_function(),
        REGRESS: regress.get_concrete_function(),
        TRANSFORM_FEATURES: transform_features.get_concrete_function(),
    })


def check_traced_outputs(signatures: dict[str, Any]) -> dict[str, Any]:
    """``signatures``, once each traced function returns what ``SIGNATURE_OUTPUTS`` says it returns.

    Why: AutoGraph converts these functions from their source file when they are traced, finding
    each by the line number its bytecode recorded at import. A source file changed after the process
    imported it (an editor saving during a run) makes it convert the lines of a neighbouring function:
    with one comment line added above them, ``classify`` was traced as ``serving_default`` and
    ``regress`` as ``classify``, and the model was exported that way (reproduced 2026-12-07; the
    serving canary then refused it). Stopped here, the Trainer fails at once and says why."""
    for name, function in signatures.items():
        returned = set(function.structured_outputs)
        if returned != SIGNATURE_OUTPUTS[name]:
            raise RuntimeError(
                f"signature {name!r} was traced to return {sorted(returned)}, not {sorted(SIGNATURE_OUTPUTS[name])}: "
                f"AutoGraph converted other source lines than {__file__}'s {name} function (was the file edited after "
                "this process started? AutoGraph reads a function's source when it traces it); run again")
    return signatures
