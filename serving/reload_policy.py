"""Which ModelServerConfig a client may load through ``HandleReloadConfigRequest``.

TF Serving loads whatever SavedModel a reload names: anyone who reaches the gRPC port can make the
server load and serve a model from any path the process can read. Here a reload may name only
base paths inside the allowed model roots (by default the base paths the server started with;
``--model_reload_roots`` widens them), compared after resolving ``..`` and symlinks, and
``--allow_model_config_reload=false`` turns the RPC off. The config file given on the command
line (and its polling) is the operator's and is not restricted.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

import grpc
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError


def normalized(path: str) -> str:
    """A local path with symlinks and ``..`` resolved; a URI with ``..`` folded (no links there)."""
    if "://" in path:
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath('/' + rest).lstrip('/')}"
    return os.path.realpath(path)


@dataclass(frozen=True)
class ReloadPolicy:
    """Whether reloads are allowed, and under which roots."""

    enabled: bool
    roots: tuple[str, ...]

    @classmethod
    def of(cls, enabled: bool, roots: list[str]) -> ReloadPolicy:
        """A policy over ``roots`` (any file system), normalized once."""
        return cls(enabled, tuple(normalized(r).rstrip("/") for r in roots if r))

    def allows(self, base_path: str) -> bool:
        """Whether ``base_path`` is one of the roots or below one."""
        path = normalized(base_path)
        return any(path == root or path.startswith(root + "/") for root in self.roots)

    def check(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """PERMISSION_DENIED, naming the model and path, unless every base path is allowed."""
        if not self.enabled:
            raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                               "HandleReloadConfigRequest is turned off on this server (--allow_model_config_reload=false)")
        for entry in config.model_config_list.config:
            if not self.allows(entry.base_path):
                raise ServingError(grpc.StatusCode.PERMISSION_DENIED,
                                   f"model {entry.name}: base_path {entry.base_path} is outside the allowed model roots "
                                   f"{list(self.roots)} (--model_reload_roots)")
