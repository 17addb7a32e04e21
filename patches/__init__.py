"""Every change this project makes to a third-party library, in one module, each with what lets it go.

``import patches`` is the rule: every package of the project imports it first (through
``embedconfig``; the server through ``serving``), which sets the Keras-2 switch before TensorFlow
loads. The other patches are functions the entry points call, each idempotent and each scoped to
what needs it. tests/test_architecture.py checks that no other module patches a library.

| patch | library (pinned) | why | lets go when |
|---|---|---|---|
| Keras 2 (TF_USE_LEGACY_KERAS=1, at import) | tensorflow 2.16.2 | TF 2.16 makes Keras 3 tf.keras; TFX 1.16's Trainer, TFMA 0.47 and tfrs 0.7.3 need Keras 2 (tf_keras) | the stack moves to Keras 3 (a TFX that supports it) |
| exclude_tf_keras_from_autograph | tensorflow 2.16.2 | AutoGraph converts tf_keras' own training loop in every process (most of a small model's first fit) | the pinned TF's autograph/core/config.py lists DoNotConvert('tf_keras') (later TF does) |
| stop_tfio_exit_abort | tensorflow-io 0.37.1 | abort at exit after any s3:// use (tensorflow/io#1912, #2039) | a tensorflow-io release with tensorflow/io#2120 (merged after 0.37.1, the last release) |
| share_beam_s3_clients | apache-beam 2.59.0 | Beam's S3FileSystem builds an S3IO, a boto3 session and a client per file operation (nearly a third of a bucket run's samples) | Beam's s3filesystem.py keeps one S3IO/client per process |
| no_tfx_sdist_for_beam_workers | tfx 1.16.0 | every Beam executor builds an sdist of TFX for remote workers (1.25 s and a 48 MB temp dir per component) even for DirectRunner | TFX skips make_beam_dependency_flags for local runners |
| absl_level_pinned | tfx 1.16.0 / absl-py 1.4.0 | TFX's Beam executors re-parse absl flags mid-run, which resets the absl logger to WARNING | TFX stops re-parsing flags in its executors |
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import struct
import threading
from typing import Any, Iterator

# --------------------------------------------------------------------------- Keras 2, at import
# TF 2.16 picks tf.keras from TF_USE_LEGACY_KERAS when TensorFlow is first imported, so it is set
# here, where every package's imports start (models/trainer.py asserts it took effect).
os.environ["TF_USE_LEGACY_KERAS"] = "1"


# --------------------------------------------------------------------------- AutoGraph and tf_keras
# TF 2.16's AutoGraph leaves ``keras`` and ``tensorflow`` unconverted
# (tensorflow/python/autograph/core/config.py) but not ``tf_keras``, the package Keras 2 moved to.
# So the first ``fit``/``evaluate``/``predict`` of every process re-parses and converts tf_keras'
# training loop, layers and metrics: most of a small model's first fit
# (bench/RESULTS.md, "What made the cold run faster (measured side by side)").
# Later TensorFlow adds ``DoNotConvert("tf_keras")`` to the same list; this backports that one
# rule. Our own layers are still converted.
TF_KERAS = "tf_keras"


def exclude_tf_keras_from_autograph() -> None:
    """Add TensorFlow's later ``DoNotConvert("tf_keras")`` rule once (idempotent)."""
    from tensorflow.python.autograph.core import config as autograph_config

    rules = autograph_config.CONVERSION_RULES
    if any(isinstance(rule, autograph_config.DoNotConvert) and rule.matches(TF_KERAS) for rule in rules):
        return
    autograph_config.CONVERSION_RULES = rules + (autograph_config.DoNotConvert(TF_KERAS),)


# --------------------------------------------------------------------------- tensorflow-io's exit abort
# tensorflow-io 0.35-0.37.1 aborts every process that created an S3 client at exit: ``pure virtual
# method called``, exit 134. The cause, found upstream (tensorflow/io#2120): at exit, C++ static
# destructors run in an order where the AWS SDK's static log system is destroyed before the S3
# client's curl handle container, whose destructor then logs through the dangling logger. A Kubeflow
# task, a Beam worker or ``embedpipe run`` that exits that way has failed, whatever it did before.
# The fix removes the cause instead of hiding the exit code: at interpreter exit (``atexit`` runs
# before any C++ static destructor) it calls tensorflow-io's own ``AWSLogSystem::ShutdownAWSLogging()``,
# which sets the SDK's log system to null, as the plugin would on an orderly shutdown. That function
# is not exported, so its address is read from the plugin's ELF symbol table (the wheel ships one)
# and added to the plugin's load address (``/proc/self/maps``). The same S3 write exits 134 without
# the hook and 0 with it (tests/test_object_storage.py). If the symbol or the mapping cannot be
# found (another build, another OS), the hook does nothing and says so: nothing is called at a
# guessed address.
PLUGIN_FILE = "libtensorflow_io_plugins.so"
SHUTDOWN_SYMBOL = b"_ZN10tensorflow2io2s316tf_s3_filesystem12AWSLogSystem18ShutdownAWSLoggingEv"

_exit_hook_installed = False


def elf_symbol_offset(path: str, name: bytes) -> int | None:
    """The value (offset from the load address) of symbol ``name`` in an ELF64 little-endian
    shared object's ``.symtab``, or None. Reads only the section headers, .strtab and .symtab."""
    import numpy as np

    with open(path, "rb") as f:  # a local shared library, mapped by the loader: not data or artifacts
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        shoff, = struct.unpack_from("<Q", header, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", header, 0x3A)
        f.seek(shoff)
        sections = [struct.unpack_from("<IIQQQQIIQQ", f.read(shentsize)) for _ in range(shnum)]
        symtab = next((s for s in sections if s[1] == 2), None)  # SHT_SYMTAB
        if symtab is None:
            return None
        strtab = sections[symtab[6]]  # sh_link: the symbol table's string table
        f.seek(strtab[4])
        strings = f.read(strtab[5])
        f.seek(symtab[4])
        symbols = np.frombuffer(
            f.read(symtab[5]),
            dtype=np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"), ("size", "<u8")]),
        )
    start = strings.find(b"\0" + name + b"\0")
    if start < 0:
        return None
    match = symbols[(symbols["name"] == start + 1) & (symbols["info"] & 0xF == 2)]  # STT_FUNC
    return int(match["value"][0]) if len(match) else None


def _loaded_plugin() -> tuple[str, int] | None:
    """(path, load address) of the tensorflow-io plugin in this process, or None if not loaded."""
    try:
        with open("/proc/self/maps") as maps:  # the process's own memory map (Linux)
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and fields[5].endswith("/" + PLUGIN_FILE) and int(fields[2], 16) == 0:
                    return fields[5], int(fields[0].split("-")[0], 16)
    except OSError:
        return None
    return None


def shutdown_aws_logging() -> bool:
    """Call tensorflow-io's ``AWSLogSystem::ShutdownAWSLogging()`` if the plugin is loaded; True if called."""
    loaded = _loaded_plugin()
    if loaded is None:
        return False
    path, base = loaded
    offset = elf_symbol_offset(path, SHUTDOWN_SYMBOL)
    if offset is None:
        logging.getLogger(__name__).warning(
            "%s has no symbol %s: cannot stop AWS logging before exit; a process that used s3:// may "
            "abort with 'pure virtual method called' (tensorflow/io#2039)", path, SHUTDOWN_SYMBOL.decode())
        return False
    ctypes.CFUNCTYPE(None)(base + offset)()
    return True


def stop_tfio_exit_abort() -> None:
    """Register the exit hook once per process (cheap: nothing is read until exit)."""
    global _exit_hook_installed
    if not _exit_hook_installed:
        atexit.register(shutdown_aws_logging)
        _exit_hook_installed = True


# --------------------------------------------------------------------------- Beam's S3 clients
# apache-beam 2.59's ``S3FileSystem`` builds a new ``S3IO`` for every call (match, open, exists,
# size, rename, delete), and each builds a new ``boto3.session.Session()`` and S3 client: botocore
# finds, reads and parses the S3 service model's JSON again. On a pipeline root in a bucket that is
# most of what Beam does: a py-spy profile of a cold 6,000-row run on an S3-API server had nearly a
# third of all samples in ``S3IO.__init__`` (bench/RESULTS.md, "Object storage and process start-up").
# boto3's documentation recommends one client shared across threads (low-level clients are thread
# safe; sessions are not), so Beam's module gets a session factory whose ``client(**settings)``
# returns the client already built with the same settings. Beam's per-file state lives in its own
# ``Client`` wrapper, still built per ``S3IO``; only the boto3 client underneath is shared.
# Refreshing credentials are refreshed by botocore inside that client.
_lock = threading.Lock()
_clients: dict[tuple, Any] = {}


class SharedClientSession:
    """Stands in for ``boto3.session.Session`` where Beam builds its S3 client: same clients, built once."""

    def client(self, **settings: Any) -> Any:
        """The boto3 client for these settings (service, endpoint, region, keys...), built on first use."""
        import boto3

        key = tuple(sorted(settings.items()))
        with _lock:
            if key not in _clients:
                _clients[key] = boto3.session.Session().client(**settings)
            return _clients[key]


class _Boto3WithSharedClients:
    """What Beam's S3 client module sees as ``boto3``: only ``boto3.session.Session`` is used there."""

    class session:  # noqa: N801 -- mirrors the module attribute boto3.session
        Session = SharedClientSession


def share_beam_s3_clients() -> bool:
    """Make Beam's S3 IO in this process reuse its boto3 clients; False when boto3 is not installed."""
    from apache_beam.io.aws.clients.s3 import boto3_client

    if boto3_client.boto3 is None:
        return False
    boto3_client.boto3 = _Boto3WithSharedClients
    return True


# --------------------------------------------------------------------------- TFX's sdist for Beam workers
@contextlib.contextmanager
def no_tfx_sdist_for_beam_workers(workers_have_tfx: bool) -> Iterator[None]:
    """Keep TFX from packaging itself for Beam workers that already have it (``workers_have_tfx``:
    DirectRunner, and the portable runner, whose workers are the project's SDK harness image or
    worker pool; Dataflow keeps TFX's behaviour).

    Every Beam-based TFX executor, unless its Beam args name a dependency flag, builds an sdist of
    the installed TFX for remote workers (``dependency_utils.make_beam_dependency_flags``): it copies
    site-packages/tfx (48 MB) into a new temp dir it never removes and runs setup.py, 1.25 s measured
    here, once per Beam component per run; with a worker pool it also left a 49 MB temp dir per job.
    """
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if workers_have_tfx:
        dependency_utils.make_beam_dependency_flags = lambda args: list(args)
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = original


# --------------------------------------------------------------------------- absl's logger level
@contextlib.contextmanager
def absl_level_pinned(level: int) -> Iterator[logging.Logger]:
    """The absl logger at ``level`` while the block runs, whatever sets it meanwhile: TFX's Beam
    executors re-parse absl flags (sys.argv + Beam args) when they start, which resets this logger to
    WARNING mid-run and would silence the run's progress lines (pipeline/local_runner.py)."""
    logger = logging.getLogger("absl")
    previous = logger.level
    logger.setLevel(level)
    logger.setLevel = lambda _level: None  # type: ignore[method-assign]
    try:
        yield logger
    finally:
        del logger.setLevel  # back to logging.Logger.setLevel
        logger.setLevel(previous)
