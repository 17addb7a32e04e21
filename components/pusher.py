"""Pusher executor whose pushes a polling model server can never see half-written, and never repeats.

TFX's Pusher copies the model into ``<base>/<unix time>/`` in place, ``saved_model.pb`` last. A
server that polls meanwhile sees a version directory whose variables are still being written
(TF Serving and this project's server wait for ``saved_model.pb``, but a reader of the directory
does not), and a push killed half way leaves that directory behind, unrecorded, so the rerun
pushes the same model again under a new version.

This executor (TFX's, with the copy replaced):
- on a local file system it writes the whole version under a name no server takes for a version
  (``.pushing-<version>-<pid>``) in the same base directory, then renames it into place: the
  version appears complete or not at all;
- on an object store (no atomic directory rename) it copies every file, then ``saved_model.pb``
  last, the marker servers wait for (TFX's order);
- a version already in the base directory with the same model (SHA-256 of ``saved_model.pb`` and
  the variables) is recorded as this push instead of a second copy;
- staging directories of killed pushes, untouched for an hour, are removed.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Any

import tensorflow as tf
from absl import logging
from tfx.components.pusher import executor as tfx_pusher
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

STAGING_PREFIX = ".pushing-"


def model_fingerprint(model_dir: str) -> str:
    """SHA-256 over the SavedModel's graph (``saved_model.pb``) and every file of ``variables/``."""
    relatives = ["saved_model.pb"]
    variables = os.path.join(model_dir, "variables")
    if tf.io.gfile.isdir(variables):
        relatives += [os.path.join("variables", name.rstrip("/")) for name in sorted(tf.io.gfile.listdir(variables))]
    digest = hashlib.sha256()
    for relative in relatives:
        path = os.path.join(model_dir, relative)
        if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
            digest.update(relative.encode())
            with tf.io.gfile.GFile(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def find_pushed_copy(base_directory: str, fingerprint: str) -> str | None:
    """The version directory under ``base_directory`` that holds a model with ``fingerprint``, if any."""
    if not tf.io.gfile.isdir(base_directory):
        return None
    for entry in sorted(tf.io.gfile.listdir(base_directory), reverse=True):
        name = entry.rstrip("/")
        version_dir = os.path.join(base_directory, name)
        if name.isdigit() and tf.io.gfile.exists(os.path.join(version_dir, "saved_model.pb")):
            if model_fingerprint(version_dir) == fingerprint:
                return version_dir
    return None


def remove_stale_staging(base_directory: str, older_than_seconds: float = 3600) -> list[str]:
    """Remove the staging directories of killed pushes; the paths removed."""
    removed = []
    if not tf.io.gfile.isdir(base_directory):
        return removed
    for entry in tf.io.gfile.listdir(base_directory):
        name = entry.rstrip("/")
        path = os.path.join(base_directory, name)
        if name.startswith(STAGING_PREFIX):
            newest = max((tf.io.gfile.stat(os.path.join(d, f)).mtime_nsec for d, _, files in tf.io.gfile.walk(path) for f in files),
                         default=0)
            if time.time() - newest / 1e9 >= older_than_seconds:
                tf.io.gfile.rmtree(path)
                removed.append(path)
    return removed


def push_model(model_path: str, base_directory: str, version: str) -> str:
    """Write ``model_path`` as ``<base_directory>/<version>`` so that no reader sees it half-written; its path."""
    target = os.path.join(base_directory, version)
    tf.io.gfile.makedirs(base_directory)
    if "://" not in base_directory:
        staging = os.path.join(base_directory, f"{STAGING_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        io_utils.copy_dir(model_path, staging)
        tf.io.gfile.rename(staging, target)  # one rename in one directory: atomic on a local file system
        return target
    io_utils.copy_dir(model_path, target, deny_regex_patterns=[r"saved_model\.pb"])
    io_utils.copy_file(os.path.join(model_path, "saved_model.pb"), os.path.join(target, "saved_model.pb"))
    return target


class Executor(tfx_pusher.Executor):
    """TFX's Pusher, with :func:`push_model` for the copy and no second copy of the same model."""

    def Do(self, input_dict: dict[str, list[Any]], output_dict: dict[str, list[Any]], exec_properties: dict[str, Any]) -> None:  # noqa: N802
        """Push the blessed model to the filesystem destination (see the module docstring)."""
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError(f"push destination {destination.WhichOneof('destination')!r}: only filesystem")
        base = destination.filesystem.base_directory
        for path in remove_stale_staging(base):
            logging.warning("Pusher: removed the staging directory of a killed push: %s", path)
        existing = find_pushed_copy(base, model_fingerprint(model_path))
        if existing is not None:
            logging.info("Pusher: %s already holds this model; recorded as this push, not copied again", existing)
            serving_path = existing
        else:
            version = str(int(time.time()))
            while tf.io.gfile.exists(os.path.join(base, version)):  # two pushes in one second
                version = str(int(version) + 1)
            serving_path = push_model(model_path, base, version)
            logging.info("Pusher: model written to %s", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)  # TFX's archive copy in the artifact
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=os.path.basename(serving_path))
