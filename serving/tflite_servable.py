"""A version served from ``model.tflite`` (``--prefer_tflite_model``), through TensorFlow's TFLite interpreter.

TF Serving's flag: serve the TensorFlow Lite model of a version directory instead of its
SavedModel when the file is there. The interpreter's signatures become SignatureDefs (metadata
and request checks are the SavedModel path's); a file without signatures gets one
``serving_default`` keyed by its tensor names. Inputs of another shape than the model's are
resized, as TF Serving does. One interpreter per version; it is not thread-safe, so calls take a lock.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from serving.servable import DEFAULT_SIGNATURE, PREDICT_METHOD, TFLITE_FILE, ServableVersion


def _tensor_info(detail: dict) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=detail["name"], dtype=tf.as_dtype(detail["dtype"]).as_datatype_enum)
    for size in detail.get("shape_signature", detail["shape"]):
        info.tensor_shape.dim.add().size = int(size)
    return info


class TfLiteVersion(ServableVersion):
    """Same interface as :class:`ServableVersion`; the graph is a TFLite flatbuffer."""

    def _load(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        with tf.io.gfile.GFile(os.path.join(self.path, TFLITE_FILE), "rb") as f:
            self._interpreter = tf.lite.Interpreter(model_content=f.read())
        self._call_lock = threading.Lock()
        definitions: dict[str, meta_graph_pb2.SignatureDef] = {}
        for key in self._interpreter.get_signature_list():
            runner = self._interpreter.get_signature_runner(key)
            definition = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
            for alias, detail in runner.get_input_details().items():
                definition.inputs[alias].CopyFrom(_tensor_info(detail))
            for alias, detail in runner.get_output_details().items():
                definition.outputs[alias].CopyFrom(_tensor_info(detail))
            definitions[key] = definition
        if not definitions:  # no signatures in the file: the tensors by name, as serving_default
            self._interpreter.allocate_tensors()
            definition = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
            for detail in self._interpreter.get_input_details():
                definition.inputs[detail["name"]].CopyFrom(_tensor_info(detail))
            for detail in self._interpreter.get_output_details():
                definition.outputs[detail["name"]].CopyFrom(_tensor_info(detail))
            definitions[DEFAULT_SIGNATURE] = definition
        return definitions

    def _runner(self, key: str, feed: tuple[str, ...], fetch: tuple[str, ...]) -> Callable[..., list[np.ndarray]]:
        if key in self._interpreter.get_signature_list():
            runner = self._interpreter.get_signature_runner(key)

            def run(*arrays: np.ndarray) -> list[np.ndarray]:
                with self._call_lock:  # the signature runner resizes inputs whose shape differs
                    outputs = runner(**dict(zip(feed, arrays, strict=True)))
                return [np.array(outputs[alias]) for alias in fetch]

            return run
        inputs = {d["name"]: d["index"] for d in self._interpreter.get_input_details()}
        outputs = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}

        def run_by_tensor(*arrays: np.ndarray) -> list[np.ndarray]:
            with self._call_lock:
                for alias, array in zip(feed, arrays, strict=True):
                    if tuple(self._interpreter.get_tensor(inputs[alias]).shape) != array.shape:
                        self._interpreter.resize_tensor_input(inputs[alias], array.shape)
                        self._interpreter.allocate_tensors()
                    self._interpreter.set_tensor(inputs[alias], array)
                self._interpreter.invoke()
                return [np.array(self._interpreter.get_tensor(outputs[alias])) for alias in fetch]

        return run_by_tensor
