"""serving.tensors: the direct numpy codec gives exactly what TensorFlow's own conversion gives,
and malformed request tensors still get TensorFlow's error, naming the input."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import ServingError
from serving.tensors import from_ndarray, to_ndarray

ARRAYS = {
    "strings": np.array([[b"a", b"bc"], [b"", b"\xff\x00"]], dtype=object),
    "float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
    "float64": np.array([1e-300, -2.5, np.inf]),
    "int32": np.array([[-(2**31)], [2**31 - 1]], dtype=np.int32),
    "int64": np.array([2**62, -1, 0], dtype=np.int64),
    "scalar": np.array(3.5, dtype=np.float32),
    "empty": np.zeros((0, 4), dtype=np.int64),
    "bool (through TensorFlow)": np.array([True, False]),
    "half (through TensorFlow)": np.array([0.5, -1.0], dtype=np.float16),
    "uint8 (through TensorFlow)": np.array([0, 255], dtype=np.uint8),
}


def _same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tolist() == b.tolist()


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("packed", [False, True], ids=["typed fields", "tensor_content"])
def test_request_tensors_decode_as_tensorflow_decodes_them(name: str, packed: bool) -> None:
    proto = tf.make_tensor_proto(ARRAYS[name])
    if not packed and proto.tensor_content:  # make_tensor_proto packs numbers; unpack into *_val
        proto = tensor_pb2.TensorProto()
        proto.CopyFrom(from_ndarray(ARRAYS[name]))
    decoded = to_ndarray(proto, "x")
    _same(decoded, tf.make_ndarray(proto))
    decoded.reshape(-1)[:0] = 0  # writable, like tf.make_ndarray's answer


def test_short_typed_values_repeat_the_last_one_as_tensorflow_does() -> None:
    one = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0], tensor_shape={"dim": [{"size": 3}]})
    _same(to_ndarray(one, "x"), np.full(3, 2.0, dtype=np.float32))
    two = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"a", b"b"], tensor_shape={"dim": [{"size": 3}]})
    _same(to_ndarray(two, "x"), np.array([b"a", b"b", b"b"], dtype=object))


@pytest.mark.parametrize("name", [n for n in ARRAYS if n != "strings"] + ["strings"])
def test_answers_use_typed_fields_and_round_trip(name: str) -> None:
    proto = from_ndarray(ARRAYS[name])
    assert not proto.tensor_content
    assert [d.size for d in proto.tensor_shape.dim] == list(ARRAYS[name].shape)
    _same(tf.make_ndarray(proto), ARRAYS[name])


def test_text_answers_are_encoded_as_utf8_strings() -> None:
    proto = from_ndarray(np.array(["é", b"b"], dtype=object))
    assert proto.dtype == types_pb2.DT_STRING and list(proto.string_val) == ["é".encode(), b"b"]


@pytest.mark.parametrize(
    "proto",
    [
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0, 3.0, 4.0], tensor_shape={"dim": [{"size": 3}]}),
        tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, tensor_content=b"\x00" * 12, tensor_shape={"dim": [{"size": 2}]}),
        tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID),
    ],
    ids=["too many values", "content size", "no dtype"],
)
def test_malformed_request_tensors_are_invalid_argument_naming_the_input(proto: tensor_pb2.TensorProto) -> None:
    with pytest.raises(ServingError) as raised:
        to_ndarray(proto, "history")
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "'history'" in raised.value.message
