"""TensorProto <-> numpy, the way TF Serving reads and writes them.

Requests may carry values in ``tensor_content`` or in the typed ``*_val`` fields (a single typed
value is broadcast to the whole shape, as TensorFlow does); answers use the typed fields.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

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


def to_ndarray(proto: tensor_pb2.TensorProto, name: str) -> np.ndarray:
    """Decode a request tensor; INVALID_ARGUMENT naming the input when it is malformed."""
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # TF raises TypeError/ValueError for bad dtypes, sizes and shapes
        raise invalid(f"Invalid tensor for input '{name}': {e}") from e


def from_ndarray(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode an answer tensor with typed value fields."""
    array = np.asarray(array)
    dtype = tf.as_dtype(array.dtype if array.dtype != object else tf.string).as_datatype_enum
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape]),
    )
    field = _TYPED_FIELD.get(dtype)
    if field is None:  # rare dtypes: let TensorFlow encode them
        return tf.make_tensor_proto(array)
    flat = array.reshape(-1)
    if dtype == types_pb2.DT_STRING:
        getattr(proto, field).extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif dtype == types_pb2.DT_HALF:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(proto, field).extend(flat.tolist())
    return proto
