"""``tensorflow.ProfilerService/Profile`` on the model server's gRPC port (``--enable_profiler``, on by default).

TF Serving registers TensorFlow's profiler service beside its own, so
``tf.profiler.experimental.client.trace("grpc://HOST:PORT", logdir, duration_ms)`` (TensorBoard's
"capture profile") traces a live server. Here a Profile request runs TensorFlow's own profiler
in this process for ``duration_ms`` (every Session call of every loaded version is in the
trace), writes the XSpace where TensorFlow's profiler server writes it
(``<repository_root>/<session_id>/<host_name>.xplane.pb``, through tf.io.gfile) and answers
``empty_trace: false``. One trace at a time: a second request meanwhile gets UNAVAILABLE, which
the client retries.

The tensorflow wheel has no Python module for profiler_service.proto, so the two messages are
built here from a descriptor with the fields this service reads and writes (same names and
numbers; fields it does not read are kept as unknown fields).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import threading
import time
from concurrent.futures import Executor

import grpc
import tensorflow as tf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

log = logging.getLogger("embedpipe.serving")
SERVICE = "tensorflow.ProfilerService"


def _messages():
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="embedpipe/profiler_service.proto", package="tensorflow", syntax="proto3")
    request = proto.message_type.add(name="ProfileRequest")
    for name, number, kind, label in (("duration_ms", 1, f.TYPE_UINT64, f.LABEL_OPTIONAL), ("max_events", 2, f.TYPE_UINT64, f.LABEL_OPTIONAL),
                                      ("tools", 3, f.TYPE_STRING, f.LABEL_REPEATED), ("repository_root", 5, f.TYPE_STRING, f.LABEL_OPTIONAL),
                                      ("session_id", 6, f.TYPE_STRING, f.LABEL_OPTIONAL), ("host_name", 7, f.TYPE_STRING, f.LABEL_OPTIONAL)):
        request.field.add(name=name, number=number, type=kind, label=label)
    tool_data = proto.message_type.add(name="ProfileToolData")
    tool_data.field.add(name="name", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    tool_data.field.add(name="data", number=2, type=f.TYPE_BYTES, label=f.LABEL_OPTIONAL)
    response = proto.message_type.add(name="ProfileResponse")
    response.field.add(name="tool_data", number=6, type=f.TYPE_MESSAGE, label=f.LABEL_REPEATED, type_name=".tensorflow.ProfileToolData")
    response.field.add(name="empty_trace", number=7, type=f.TYPE_BOOL, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    factory = message_factory.MessageFactory(pool)
    return (factory.GetPrototype(pool.FindMessageTypeByName("tensorflow.ProfileRequest")),
            factory.GetPrototype(pool.FindMessageTypeByName("tensorflow.ProfileResponse")))


ProfileRequest, ProfileResponse = _messages()
_tracing = threading.Lock()  # TensorFlow's profiler is one per process


def capture(request) -> object:
    """Trace this process for ``request.duration_ms``; write the XSpace; the ProfileResponse."""
    if not _tracing.acquire(blocking=False):
        raise RuntimeError("another profile is being captured")
    try:
        with tempfile.TemporaryDirectory(prefix="embedpipe-profile-") as scratch:
            tf.profiler.experimental.start(scratch)
            time.sleep(max(request.duration_ms, 1) / 1000)
            tf.profiler.experimental.stop()
            traces = tf.io.gfile.glob(os.path.join(scratch, "plugins", "profile", "*", "*.xplane.pb"))
            xspace = b""
            if traces:
                with tf.io.gfile.GFile(traces[0], "rb") as f:
                    xspace = f.read()
    finally:
        _tracing.release()
    if request.repository_root and xspace:
        host = request.host_name or socket.gethostname()
        target = os.path.join(request.repository_root, request.session_id or time.strftime("%Y_%m_%d_%H_%M_%S"))
        tf.io.gfile.makedirs(target)
        with tf.io.gfile.GFile(os.path.join(target, f"{host}.xplane.pb"), "wb") as f:
            f.write(xspace)
    return ProfileResponse(empty_trace=not xspace)


def profiler_handler(executor: Executor) -> grpc.GenericRpcHandler:
    """The generic gRPC handler of ``tensorflow.ProfilerService/Profile`` for a grpc.aio server."""

    async def profile(request, context: grpc.aio.ServicerContext):
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, capture, request)
        except RuntimeError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Profile": grpc.unary_unary_rpc_method_handler(
            profile, request_deserializer=ProfileRequest.FromString, response_serializer=ProfileResponse.SerializeToString),
    })
