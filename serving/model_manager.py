"""Which versions of which models are loaded: polling, version policies, labels, hot swaps.

Each model's ``base_path`` is polled every ``poll_seconds``; a version is a directory whose name is
an integer and that holds ``saved_model.pb`` (so a half-copied push is not taken). The policy
(latest N, all, specific) picks the wanted versions. A new version is loaded and warmed up *before*
any version it replaces is unloaded; a request that already holds a version finishes on it. A
version that fails to load is reported (state END with its error) and retried a few times while the
versions already loaded keep serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingError, invalid, not_found
from serving.monitoring import Metrics
from serving.servable import TFLITE_FILE, LoadOptions, ServableVersion, load_version

State = get_model_status_pb2.ModelVersionStatus.State
log = logging.getLogger("embedpipe.serving")


@dataclass
class VersionStatus:
    """Life-cycle state of one version, as GetModelStatus reports it."""

    state: int
    error: str = ""
    attempts: int = 0
    next_attempt: float = 0.0  # time.monotonic() before which a failed load is not retried


@dataclass
class ManagedModel:
    """One entry of the ModelServerConfig and what is loaded for it."""

    config: model_server_config_pb2.ModelConfig
    loaded: dict[int, ServableVersion] = field(default_factory=dict)
    status: dict[int, VersionStatus] = field(default_factory=dict)


def available_versions(base_path: str, model_files: tuple[str, ...] = ("saved_model.pb",)) -> dict[int, str]:
    """Version -> directory, for the integer-named directories under ``base_path`` that hold one of
    ``model_files`` (a push writes saved_model.pb last, so a half-copied version is not taken).
    The directory keeps its own name: ``00000123`` is version 123, loaded from ``<base>/00000123``
    (TF Serving's testdata models are laid out that way)."""
    if not tf.io.gfile.isdir(base_path):
        return {}
    versions: dict[int, str] = {}
    for entry in sorted(tf.io.gfile.listdir(base_path)):
        name = entry.rstrip("/")
        if name.isdigit() and any(tf.io.gfile.exists(os.path.join(base_path, name, f)) for f in model_files):
            if int(name) in versions:
                log.warning("%s: directories %s and %s are both version %d; serving %s",
                            base_path, os.path.basename(versions[int(name)]), name, int(name), os.path.basename(versions[int(name)]))
                continue
            versions[int(name)] = os.path.join(base_path, name)
    return versions


def wanted_versions(config: model_server_config_pb2.ModelConfig, on_disk: list[int]) -> list[int]:
    """The versions the model's version policy asks for, among those on disk."""
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return on_disk
    if kind == "specific":
        return [v for v in on_disk if v in set(policy.specific.versions)]
    keep = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
    return on_disk[-keep:]


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config ``--model_name``/``--model_base_path`` stand for."""
    config = model_server_config_pb2.ModelServerConfig()
    entry = config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = name, base_path, "tensorflow"
    return config


class ModelManager:
    """Thread-safe registry of loaded versions, refreshed by ``poll_once`` or a polling thread."""

    def __init__(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        poll_seconds: float = 1.0,
        warmup: Callable[[ServableVersion], int] | None = None,
        load_options: LoadOptions | None = None,
        max_load_retries: int = 5,
        load_retry_interval_seconds: float = 60.0,
        metrics: Metrics | None = None,
        on_config: Callable[[model_server_config_pb2.ModelServerConfig], None] | None = None,
    ) -> None:
        """``warmup`` replays a version's warmup requests before it serves (None: no warmup);
        a version that fails to load is retried ``max_load_retries`` times, at most once per poll
        and not sooner than ``load_retry_interval_seconds`` after the last attempt (TF Serving's
        ``--max_num_load_retries`` / ``--load_retry_interval_micros``). ``on_config`` sees every
        config before it applies (at start and each reload; the request logs follow it) and may
        refuse it by raising ServingError."""
        self._lock = threading.RLock()
        self._models: dict[str, ManagedModel] = {}
        self._poll_seconds = poll_seconds
        self._warmup = warmup
        self._load_options = load_options or LoadOptions()
        self._model_files = ("saved_model.pb", TFLITE_FILE) if self._load_options.prefer_tflite else ("saved_model.pb",)
        self._max_attempts = 1 + max(0, max_load_retries)
        self._retry_interval = load_retry_interval_seconds
        self._metrics = metrics or Metrics()
        self._last_log: dict[str, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_config = on_config
        self.reload(config)

    # ------------------------------------------------------------------ config
    def reload(self, config: model_server_config_pb2.ModelServerConfig) -> None:
        """Replace the model list: new models are added, models left out are unloaded."""
        if config.WhichOneof("config") != "model_config_list":
            raise invalid("ModelServerConfig must hold a model_config_list.")
        entries = list(config.model_config_list.config)
        names = [e.name for e in entries]
        if len(set(names)) != len(names):
            raise invalid(f"Illegal to list model {next(n for n in names if names.count(n) > 1)} multiple times in config list")
        for e in entries:
            if not e.name or not e.base_path:
                raise invalid("Every model config needs a name and a base_path.")
        if self._on_config is not None:
            self._on_config(config)
        with self._lock:
            for name in list(self._models):
                if name not in names:
                    self._unload_all(name)
                    del self._models[name]
            for e in entries:
                if e.name in self._models:
                    self._models[e.name].config = e
                else:
                    self._models[e.name] = ManagedModel(config=e)
        self.poll_once()

    def model_names(self) -> list[str]:
        """Names of the configured models."""
        with self._lock:
            return list(self._models)

    # ------------------------------------------------------------------ polling
    def start(self) -> None:
        """Poll the file system in a background thread."""
        if self._poll_seconds > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="embedpipe-model-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (loaded versions stay until the process ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # keep serving what is loaded whatever the file system does
                log.exception("polling the model directories failed")

    def poll_once(self) -> None:
        """Load wanted versions (warming them up), then unload versions no longer wanted.

        As TF Serving's file-system source (servable_versions_always_present: false, its default):
        a base path that cannot be found is a file-system error, logged, and the loaded versions
        keep serving; a base path that holds no version unloads every version, with a warning.
        """
        with self._lock:
            models = list(self._models.items())
        for name, model in models:
            base = model.config.base_path
            if not tf.io.gfile.isdir(base):
                self._log_throttled(name, logging.ERROR, "FileSystemStoragePathSource encountered a filesystem access error: "
                                    f"Could not find base path {base} for servable {name}; still serving versions "
                                    f"{sorted(model.loaded) or 'none'}")
                continue
            on_disk = available_versions(base, self._model_files)
            if not on_disk:
                self._log_throttled(name, logging.WARNING, f"No versions of servable {name} found under base path {base}. "
                                    "Did you forget to name your leaf directory as a number (eg. '/1/')?")
                with self._lock:
                    self._unload_all(name)
                continue
            self._last_log.pop(name, None)
            wanted = wanted_versions(model.config, sorted(on_disk))
            for version in wanted:
                if version not in model.loaded:
                    self._load(name, model, version, on_disk[version])
            with self._lock:
                # never leave a model without a version while its wanted ones failed to load
                if any(v in model.loaded for v in wanted):
                    for version in [v for v in model.loaded if v not in wanted]:
                        self._unload(name, model, version)

    def _log_throttled(self, name: str, level: int, message: str, every: float = 60.0) -> None:
        """Log ``message`` when it changes, and again every ``every`` seconds while it holds
        (TF Serving logs it at every poll: once a second by default)."""
        last = self._last_log.get(name)
        now = time.monotonic()
        if last is None or last[0] != message or now - last[1] >= every:
            log.log(level, message)
            self._last_log[name] = (message, now)

    def _load(self, name: str, model: ManagedModel, version: int, path: str) -> None:
        status = model.status.setdefault(version, VersionStatus(State.START))
        if status.error and (status.attempts >= self._max_attempts or time.monotonic() < status.next_attempt):
            return
        status.state, status.attempts = State.LOADING, status.attempts + 1
        started = time.monotonic()
        try:
            servable = load_version(name, version, path, self._load_options)
            replayed = self._warmup(servable) if self._warmup else 0
        except Exception as e:  # a broken version must not take the server down
            self._metrics.model_loaded(path, False, time.monotonic() - started)
            status.state, status.error = State.END, f"{type(e).__name__}: {e}"
            status.next_attempt = time.monotonic() + self._retry_interval
            log.error("model %s version %d failed to load (attempt %d): %s", name, version, status.attempts, e)
            return
        self._metrics.model_loaded(path, True, time.monotonic() - started)
        with self._lock:
            model.loaded[version] = servable
            status.state, status.error = State.AVAILABLE, ""
        log.info("model %s version %d AVAILABLE (%d warmup requests replayed)", name, version, replayed)

    def _unload(self, name: str, model: ManagedModel, version: int) -> None:
        model.status[version].state = State.UNLOADING
        model.loaded.pop(version, None)  # requests holding it finish; Python frees it after
        model.status[version].state = State.END
        log.info("model %s version %d unloaded", name, version)

    def _unload_all(self, name: str) -> None:
        model = self._models[name]
        for version in list(model.loaded):
            self._unload(name, model, version)

    # ------------------------------------------------------------------ lookups
    def get(self, name: str, version: int | None = None, label: str | None = None) -> ServableVersion:
        """The version a request asks for (latest available when neither version nor label)."""
        with self._lock:
            model = self._models.get(name)
            if label:
                version = _labelled_version(model, label)
            if model is not None and model.loaded:
                if version is None:
                    return model.loaded[max(model.loaded)]
                if version in model.loaded:
                    return model.loaded[version]
        which = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise not_found(f"Servable not found for request: {which}")

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[tuple[int, VersionStatus]]:
        """(version, status) pairs for GetModelStatus."""
        with self._lock:
            model = self._models.get(name)
            if model is None or not model.status:
                raise not_found(f"Could not find any versions of model {name}")
            if label:
                version = _labelled_version(model, label)
            if version is not None:
                if version not in model.status:
                    raise not_found(f"Could not find version {version} of model {name}")
                return [(version, model.status[version])]
            return sorted(model.status.items())


def _labelled_version(model: ManagedModel | None, label: str) -> int:
    """The version ``label`` points at in ``model``'s config (None model: no labels)."""
    labels = dict(model.config.version_labels) if model is not None else {}
    if label not in labels:
        raise invalid(f"Unrecognized servable version label: {label}")
    return labels[label]


def parse_model_config(text: str, path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse a ModelServerConfig text proto read from ``path`` (named in the error)."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as e:
        # TF Serving's own wording (ParseProtoTextFile), which scripts and its tests look for
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"{path}: Error parsing text-format tensorflow.serving.ModelServerConfig: {e}") from e
