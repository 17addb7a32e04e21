"""Object stores for TensorFlow, TFX and Beam: one set of standard environment variables.

Three clients read an ``s3://`` path in one run: TensorFlow's file system layer (tensorflow-io's
S3 plugin: Transform, Trainer, Evaluator, the model server, every ``tf.io.gfile`` call), Beam's own
S3 IO (boto3: ExampleGen and the other Beam writes) and boto3 itself. boto3 reads the standard AWS
variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``); tensorflow-io reads the same keys but its own
endpoint and region names (``S3_ENDPOINT``, ``S3_USE_HTTPS``, ``AWS_REGION``). So the user sets the
standard ones once (on Kubeflow: a Kubernetes secret as environment variables) and
:func:`configure_s3_environment` fills in tensorflow-io's from them. Nothing here is written into
a config, the metadata store or a compiled pipeline: it is read from the environment when a
process starts.
"""

from __future__ import annotations

import os
from typing import MutableMapping

import patches

_enabled = False


def is_remote(path: str) -> bool:
    """True for a URI (``s3://``, ``gs://``, ...), False for a local path."""
    return "://" in path


def configure_s3_environment(environ: MutableMapping[str, str] | None = None) -> None:
    """Give tensorflow-io the endpoint and region boto3 uses, where it has none of its own."""
    env = os.environ if environ is None else environ
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint and "S3_ENDPOINT" not in env:
        env["S3_ENDPOINT"] = endpoint
        if endpoint.startswith("http://"):
            env.setdefault("S3_USE_HTTPS", "0")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        env.setdefault("AWS_REGION", region)
        env.setdefault("AWS_DEFAULT_REGION", region)


def enable_object_storage(beam: bool = False) -> None:
    """Make ``s3://`` work in this process's ``tf.io.gfile`` and let the process exit cleanly after.

    Call it once at the start of every entry point that may touch a bucket (the CLI, the model
    server, the Kubeflow task entrypoint, the test session). Imports TensorFlow. ``beam``: this
    process runs Beam, whose S3 IO then shares its boto3 clients (patches.share_beam_s3_clients).
    """
    global _enabled
    if beam:
        patches.share_beam_s3_clients()
    if _enabled:
        return
    configure_s3_environment()
    patches.stop_tfio_exit_abort()
    import tensorflow_io  # noqa: F401 -- registers s3:// (and az://, hdfs://) with tf.io.gfile

    _enabled = True
