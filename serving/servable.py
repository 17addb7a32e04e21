"""One loaded version of a model: its SavedModel signatures, called the way TF Serving calls them."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import input_pb2, predict_pb2

from serving.errors import ServingError, invalid
from serving.tensors import to_ndarray

DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
TFLITE_FILE = "model.tflite"
PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD = "tensorflow/serving/predict", "tensorflow/serving/classify", "tensorflow/serving/regress"


@dataclass(frozen=True)
class LoadOptions:
    """How every version is loaded and called (``--saved_model_tags``, the session flags,
    ``--enable_signature_method_name_check``)."""

    session_config: tf.compat.v1.ConfigProto | None = None
    tags: tuple[str, ...] = ("serve",)
    method_name_check: bool = False
    prefer_tflite: bool = False  # --prefer_tflite_model: model.tflite of a version directory when it has one


def _set(names: set[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def examples_from_input(request_input: input_pb2.Input) -> list[bytes]:
    """Serialized tf.Examples of an ``Input`` (context features merged into every example)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples = list(request_input.example_list.examples)
        serialized = [e.SerializeToString() for e in examples]
    elif kind == "example_list_with_context":
        context = request_input.example_list_with_context.context
        serialized = []
        for example in request_input.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(context)
            for key, feature in example.features.feature.items():
                merged.features.feature[key].CopyFrom(feature)
            serialized.append(merged.SerializeToString())
    else:
        raise invalid("Input is empty.")
    if not serialized:
        raise invalid("Input is empty.")
    return serialized


# The numpy dtype an input must have, None for strings. Shapes are not checked before the call:
# TF Serving feeds the tensor and lets the graph decide (a [1] tensor for a [None, 1] input runs),
# and a shape the graph cannot take fails in the call with TensorFlow's INVALID_ARGUMENT.
_InputCheck = np.dtype | None


def _input_check(spec: tf.TensorSpec) -> _InputCheck:
    return None if spec.dtype == tf.string else np.dtype(spec.dtype.as_numpy_dtype)


def _passes(array: np.ndarray | None, dtype: _InputCheck) -> bool:
    """Whether an input has its spec's dtype (the common, valid case)."""
    if array is None:
        return False
    if dtype is None:
        return array.dtype == object or array.dtype.kind in "SU"
    return array.dtype == dtype


def _status_from_tf(e: tf.errors.OpError) -> ServingError:
    try:
        code = next(c for c in grpc.StatusCode if c.value[0] == e.error_code)
    except StopIteration:
        code = grpc.StatusCode.INTERNAL
    return ServingError(code, e.message)


class ServableVersion:
    """A SavedModel version loaded in this process, run the way TF Serving runs it.

    Like tensorflow_model_server, the SavedModel is loaded into a TF Session (its init op runs the
    vocabulary tables' initializers) and each call feeds and fetches the tensors its SignatureDef
    names; one cached Session callable per (signature, inputs, outputs). Session.run is
    thread-safe, so concurrent requests share the version.
    """

    def __init__(self, name: str, version: int, path: str, options: LoadOptions | None = None) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.options = options or LoadOptions()
        self.signature_defs: Mapping[str, meta_graph_pb2.SignatureDef] = self._load()
        self._specs = {
            key: {alias: tf.TensorSpec(tf.TensorShape(info.tensor_shape), tf.as_dtype(info.dtype)) for alias, info in sig.inputs.items()}
            for key, sig in self.signature_defs.items()
            if not key.startswith("__")  # __saved_model_init_op is not a callable signature
        }
        # What check_inputs compares each request with (alias -> _InputCheck), so that the hot path
        # touches no TensorFlow dtype or shape objects.
        self._input_checks = {key: {alias: _input_check(spec) for alias, spec in specs.items()} for key, specs in self._specs.items()}
        self._output_aliases = {key: tuple(sorted(self.signature_defs[key].outputs)) for key in self._specs}
        self._runners: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Callable[..., list[np.ndarray]]] = {}
        self._runners_lock = threading.Lock()

    def _load(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        """Load the SavedModel into a Session of its own; its SignatureDefs."""
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=self.options.session_config)
        loader = loader_impl.SavedModelLoader(self.path)  # parses saved_model.pb
        if not loader.saved_model.meta_graphs:  # an empty or truncated file parses as an empty message
            size = tf.io.gfile.stat(os.path.join(self.path, "saved_model.pb")).length
            raise OSError(f"{self.path}/saved_model.pb could not be parsed as a SavedModel: it holds no MetaGraphDef "
                          f"({size} bytes; an empty or truncated file?)")
        with self._graph.as_default():
            meta_graph = loader.load(self._session, list(self.options.tags))
        return dict(meta_graph.signature_def)

    def signature(self, name: str) -> tuple[str, Mapping[str, tf.TensorSpec]]:
        """(resolved name, its input specs); empty name = serving_default."""
        key = name or DEFAULT_SIGNATURE
        if key not in self._specs:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return key, self._specs[key]

    def input_specs(self, signature_name: str) -> dict[str, tf.TensorSpec]:
        """The named inputs a signature takes."""
        return dict(self.signature(signature_name)[1])

    def output_keys(self, signature_name: str) -> set[str]:
        """The output aliases of a signature."""
        key, _ = self.signature(signature_name)
        return set(self.signature_defs[key].outputs)

    def check_inputs(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict's checks: method name (if asked), keys and dtypes (shapes are the graph's to judge)."""
        self.check_method(signature_name, (PREDICT_METHOD, CLASSIFY_METHOD, REGRESS_METHOD), "prediction")
        key, specs = self.signature(signature_name)
        if all(_passes(inputs.get(alias), check) for alias, check in self._input_checks[key].items()) and len(inputs) == len(specs):
            return dict(inputs)
        if inputs.keys() != specs.keys():
            sent, expected = set(inputs), set(specs)
            if len(sent) != len(expected):
                raise invalid(
                    f"input size does not match signature: {len(sent)}!={len(expected)} len({_set(sent)}) != len({_set(expected)}). "
                    f"Sent extra: {_set(sent - expected)}. Missing but required: {_set(expected - sent)}."
                )
            alias = sorted(sent - expected)[0]
            raise invalid(f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set {_set(expected)}.")
        for alias, spec in specs.items():
            array = inputs[alias]
            actual = tf.string if array.dtype == object or array.dtype.kind in "SU" else tf.as_dtype(array.dtype)
            if actual != spec.dtype:
                raise invalid(f"Expects arg[{sorted(specs).index(alias)}] to be {spec.dtype.name} but {actual.name} is provided")
        return dict(inputs)

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: list[str] | None = None) -> dict[str, np.ndarray]:
        """Call a signature on checked inputs; numpy outputs, optionally filtered."""
        return self.call(signature_name, self.check_inputs(signature_name, inputs), output_filter)

    def call(self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: list[str] | None = None) -> dict[str, np.ndarray]:
        """Call a signature on inputs already checked by ``check_inputs``."""
        key, _ = self.signature(signature_name)
        if output_filter:
            signature_def = self.signature_defs[key]
            for alias in output_filter:
                if alias not in signature_def.outputs:
                    known = set(signature_def.outputs)
                    raise invalid(f"output tensor alias not found in signature: {alias} Outputs expected to be in the set {_set(known)}.")
        feed = tuple(sorted(inputs))
        fetch = tuple(output_filter) if output_filter else self._output_aliases[key]
        runner = self._runner(key, feed, fetch)
        try:
            values = runner(*(inputs[k] for k in feed))
        except tf.errors.OpError as e:
            raise self._naming_shapes(_status_from_tf(e), key, inputs) from e
        except UnicodeDecodeError as e:  # TensorFlow's own message quotes the request's bytes (ParseExample
            # of garbage: "Could not parse example input, value: '...'"), which Python cannot decode
            raise invalid(e.object.decode("utf-8", "backslashreplace") if isinstance(e.object, bytes) else str(e)) from e
        except (TypeError, ValueError) as e:
            raise invalid(str(e)) from e
        return dict(zip(fetch, values, strict=True))

    def _naming_shapes(self, error: ServingError, key: str, inputs: Mapping[str, np.ndarray]) -> ServingError:
        """The graph's error, and, where an input's rank differs from its signature's, that input's name,
        the shape sent and the shape expected: TensorFlow's message names an op deep in the graph
        ("Expected serialized to be a scalar or vector"), not the input. Shapes are still not checked
        before the call (TF Serving lets the graph judge them, and some a signature does not declare
        run), only explained after a failure."""
        specs = self._specs[key]
        mismatched = [f"input '{alias}' was sent with shape {list(np.shape(array))}, the signature '{key}' expects "
                      f"{[d if d is not None else -1 for d in specs[alias].shape.as_list()]}"
                      for alias, array in sorted(inputs.items())
                      if alias in specs and specs[alias].shape.rank is not None and np.ndim(array) != specs[alias].shape.rank]
        if not mismatched:
            return error
        return ServingError(error.code, f"{error.message} ({'; '.join(mismatched)}; -1: any size)")

    def _runner(self, key: str, feed: tuple[str, ...], fetch: tuple[str, ...]) -> Callable[..., list[np.ndarray]]:
        runner = self._runners.get((key, feed, fetch))
        if runner is None:
            signature_def = self.signature_defs[key]
            options = config_pb2.CallableOptions(
                feed=[signature_def.inputs[a].name for a in feed], fetch=[signature_def.outputs[a].name for a in fetch]
            )
            with self._runners_lock:
                # A C-level callable (TF_SessionMakeCallable, as tf_keras' v1 backend uses): about
                # 0.14 ms less per call than Session.run / make_callable, which resolve the feeds and
                # fetches in Python on every call.
                runner = self._session._make_callable_from_options(options)
                self._runners[(key, feed, fetch)] = runner
        return runner

    def _single_input(self, signature_name: str) -> str:
        specs = self.input_specs(signature_name)
        if len(specs) != 1:
            raise invalid("Expected one input Tensor.")
        key, spec = next(iter(specs.items()))
        if spec.dtype != tf.string:
            raise invalid(f"Input tensor '{key}' must be of type string (serialized tf.Example), got {spec.dtype.name}.")
        return key

    def check_method(self, signature_name: str, allowed: tuple[str, ...], kind: str) -> None:
        """With ``--enable_signature_method_name_check``: refuse a signature of another method (TF Serving's words)."""
        if not self.options.method_name_check:
            return
        method = self.signature_defs[self.signature(signature_name)[0]].method_name
        if method not in allowed:
            expected = allowed[0] if len(allowed) == 1 else "one of {" + ", ".join(allowed) + "}"
            raise invalid(f"Expected {kind} signature method_name to be {expected}. Was: {method}")

    def classify(self, signature_name: str, serialized: list[bytes]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(classes [batch, k] or None, scores [batch, k] or None) from a classify-shaped signature."""
        self.check_method(signature_name, (CLASSIFY_METHOD,), "classification")
        key = self._single_input(signature_name)
        outputs = self.output_keys(signature_name)
        wanted = [k for k in ("classes", "scores") if k in outputs]
        if not wanted:
            raise invalid("Expected classification signature outputs to contain at least one of 'classes' and 'scores'.")
        result = self.call(signature_name, {key: np.array(serialized, dtype=object)}, wanted)
        classes, scores = result.get("classes"), result.get("scores")
        for name, value in (("classes", classes), ("scores", scores)):
            if value is not None and (value.ndim != 2 or value.shape[0] != len(serialized)):
                raise invalid(f"Expected Tensor shape: [{len(serialized)} k] but got {list(value.shape)} for output '{name}'.")
        return classes, scores

    def regress(self, signature_name: str, serialized: list[bytes]) -> np.ndarray:
        """One value per example from a regress-shaped signature (output ``outputs``)."""
        self.check_method(signature_name, (REGRESS_METHOD,), "regression")
        key = self._single_input(signature_name)
        if "outputs" not in self.output_keys(signature_name):
            raise invalid("No output Tensor with name 'outputs' found in the signature; Regress needs one.")
        values = self.call(signature_name, {key: np.array(serialized, dtype=object)}, ["outputs"])["outputs"]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1 or values.shape[0] != len(serialized):
            raise invalid(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got {list(values.shape)}")
        return values


def load_version(name: str, version: int, path: str, options: LoadOptions | None = None) -> ServableVersion:
    """The version at ``path``: from ``model.tflite`` with ``prefer_tflite`` when the file is there
    (TF Serving's fallback: else the SavedModel), else from the SavedModel."""
    options = options or LoadOptions()
    if options.prefer_tflite and tf.io.gfile.exists(os.path.join(path, TFLITE_FILE)):
        from serving.tflite_servable import TfLiteVersion

        return TfLiteVersion(name, version, path, options)
    return ServableVersion(name, version, path, options)


class PredictCall(NamedTuple):
    """A decoded Predict request, ready to run (alone or in a batch)."""

    servable: ServableVersion
    signature: str
    inputs: dict[str, np.ndarray]
    output_filter: list[str] | None

    @staticmethod
    def of(request: predict_pb2.PredictRequest, servable: ServableVersion, max_elements: int) -> PredictCall:
        """The signature, decoded inputs and output filter a PredictRequest names, on ``servable``
        (inputs declaring more than ``max_elements`` elements are refused before allocating)."""
        signature, _ = servable.signature(request.model_spec.signature_name)
        inputs = {k: to_ndarray(v, k, max_elements) for k, v in request.inputs.items()}
        return PredictCall(servable, signature, inputs, list(request.output_filter) or None)

    def run_alone(self) -> dict[str, np.ndarray]:
        """The outputs, computed for this request only (no batching)."""
        return self.servable.run(self.signature, self.inputs, self.output_filter)
