"""TLS for both transports from TF Serving's ``--ssl_config_file`` (an SSLConfig text proto).

TF Serving's ``tensorflow.serving.SSLConfig`` holds PEM text, not paths: ``server_key``,
``server_cert``, ``custom_ca`` (the CA that signs client certificates) and ``client_verify``
(mutual TLS: refuse a client without a certificate signed by ``custom_ca``). The wheel of
tensorflow-serving-api does not ship ssl_config.proto, so the message is built here from a
descriptor with the same names and numbers. gRPC takes the PEM text directly; the REST server's
``ssl`` context needs files, written to a private temporary directory and removed once loaded.
"""

from __future__ import annotations

import os
import ssl
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format


def _ssl_config_class():
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="embedpipe/ssl_config.proto", package="tensorflow.serving", syntax="proto3")
    message = proto.message_type.add(name="SSLConfig")
    for name, number, kind in (("server_key", 1, f.TYPE_STRING), ("server_cert", 2, f.TYPE_STRING),
                               ("custom_ca", 3, f.TYPE_STRING), ("client_verify", 4, f.TYPE_BOOL)):
        message.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.MessageFactory(pool).GetPrototype(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


SSLConfig = _ssl_config_class()


def parse_ssl_config(text: str, source: str):
    """An SSLConfig from its text; ValueError naming ``source`` when it cannot be used."""
    config = SSLConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"{source}: Error parsing text-format tensorflow.serving.SSLConfig: {e}") from e
    if not config.server_key or not config.server_cert:
        raise ValueError(f"{source}: server_key and server_cert are required")
    if config.client_verify and not config.custom_ca:
        raise ValueError(f"{source}: client_verify needs custom_ca, the CA that signs the client certificates")
    return config


def grpc_credentials(config) -> grpc.ServerCredentials:
    """Server credentials for gRPC; with ``client_verify`` a client certificate signed by ``custom_ca`` is required."""
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() if config.custom_ca else None,
        require_client_auth=bool(config.client_verify),
    )


def rest_context(config) -> ssl.SSLContext:
    """The REST server's TLS context, with the same rules as gRPC's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="embedpipe-tls-") as private:  # mode 0700
        cert, key = os.path.join(private, "cert.pem"), os.path.join(private, "key.pem")
        for path, text in ((cert, config.server_cert), (key, config.server_key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:  # local secret, never in a store
                f.write(text)
        context.load_cert_chain(cert, key)
    if config.custom_ca:
        context.load_verify_locations(cadata=config.custom_ca)
    context.verify_mode = ssl.CERT_REQUIRED if config.client_verify else ssl.CERT_NONE
    return context
