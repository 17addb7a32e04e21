"""TensorProto <-> numpy, the way TF Serving reads and writes them.

Requests may carry values in ``tensor_content`` or in the typed ``*_val`` fields (a single typed
value is broadcast to the whole shape, as TensorFlow does); answers use the typed fields.

Every Predict request and answer passes through here, so the common cases (string, float, double,
int32 and int64 tensors with one value per element) are decoded and encoded directly with numpy;
everything else, malformed tensors included, goes through ``tf.make_ndarray`` /
``tf.make_tensor_proto`` and gets TensorFlow's own answer.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import invalid

_TYPED_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
}

# dtype enum -> (typed field, numpy dtype) for the request tensors decoded without TensorFlow.
_DIRECT_DECODE = {
    types_pb2.DT_FLOAT: ("float_val", np.dtype(np.float32)),
    types_pb2.DT_DOUBLE: ("double_val", np.dtype(np.float64)),
    types_pb2.DT_INT32: ("int_val", np.dtype(np.int32)),
    types_pb2.DT_INT64: ("int64_val", np.dtype(np.int64)),
}

# numpy dtype -> (dtype enum, typed field) for the answer tensors encoded without TensorFlow.
_DIRECT_ENCODE = {np_dtype: (enum, field) for enum, (field, np_dtype) in _DIRECT_DECODE.items()}


def _decode_directly(proto: tensor_pb2.TensorProto) -> np.ndarray | None:
    """The array, for a well-formed tensor of a common dtype with one value per element; else None."""
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        return None
    count = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        values = proto.string_val
        if len(values) != count:
            return None
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    direct = _DIRECT_DECODE.get(proto.dtype)
    if direct is None:
        return None
    field, np_dtype = direct
    if proto.tensor_content:
        if len(proto.tensor_content) != count * np_dtype.itemsize:
            return None
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(shape).copy()
    values = getattr(proto, field)
    if len(values) != count:
        return None
    return np.array(values, dtype=np_dtype).reshape(shape)


DEFAULT_MAX_ELEMENTS = 2**24  # --max_request_elements: 64 MiB of float32, far past any 1-request batch here
MAX_REPEATED_VALUES = 2**16  # values TensorFlow would repeat to fill a declared shape (see check_declared_size)


def _values_given(proto: tensor_pb2.TensorProto) -> int:
    field = _TYPED_FIELD.get(proto.dtype)
    return len(getattr(proto, field)) if field else 0


def check_declared_size(proto: tensor_pb2.TensorProto, name: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> None:
    """Refuse, before anything is allocated, a tensor whose declared shape costs far more than it carries.

    A 20-byte request declaring a float tensor of 2^28 elements took 1 GB and 6.4 s before
    TensorFlow refused it; one serialized example with shape [2^20] is repeated by TensorFlow's
    rule (short typed fields repeat their last value) into 2^20 examples, 19 s of parsing. So: at
    most ``max_elements`` elements, and at most MAX_REPEATED_VALUES of them filled by repetition.
    """
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(size < 0 for size in shape):
        return  # TensorFlow refuses it, with its own message
    count = math.prod(shape)
    if count > max_elements:
        raise invalid(f"Input '{name}' declares {count} elements, more than this server takes in one tensor "
                      f"({max_elements}, --max_request_elements)")
    if not proto.tensor_content:
        given = _values_given(proto)
        if 0 < given < count and count - given > MAX_REPEATED_VALUES:
            raise invalid(f"Input '{name}' declares {count} elements but carries {given} values; filling more than "
                          f"{MAX_REPEATED_VALUES} by repeating the last one is refused")


def to_ndarray(proto: tensor_pb2.TensorProto, name: str, max_elements: int = DEFAULT_MAX_ELEMENTS) -> np.ndarray:
    """Decode a request tensor; INVALID_ARGUMENT naming the input when it is malformed or far
    larger than what it carries (:func:`check_declared_size`)."""
    array = _decode_directly(proto)
    if array is not None:
        return array
    check_declared_size(proto, name, max_elements)
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # TF raises TypeError/ValueError for bad dtypes, sizes and shapes
        raise invalid(f"Invalid tensor for input '{name}': {e}") from e


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Write an answer tensor into ``proto`` (empty, e.g. a fresh map entry), typed value fields."""
    array = np.asarray(array)
    direct = _DIRECT_ENCODE.get(array.dtype)
    if direct is not None:
        proto.dtype, field = direct
        values = array.reshape(-1).tolist()
    else:
        proto.dtype = tf.as_dtype(array.dtype if array.dtype != object else tf.string).as_datatype_enum
        field = _TYPED_FIELD.get(proto.dtype)
        if field is None:  # rare dtypes: let TensorFlow encode them
            proto.CopyFrom(tf.make_tensor_proto(array))
            return
        flat = array.reshape(-1)
        if proto.dtype == types_pb2.DT_STRING:
            values = [v if isinstance(v, bytes) else str(v).encode() for v in flat]
        elif proto.dtype == types_pb2.DT_HALF:
            values = flat.view(np.uint16).tolist()
        else:
            values = flat.tolist()
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    getattr(proto, field).extend(values)


def from_ndarray(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode an answer tensor with typed value fields."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array)
    return proto
