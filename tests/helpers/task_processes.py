"""Run a compiled task's ``python -m MODULE ARGS`` command in a process of its own, without paying
the interpreter's import of TensorFlow and TFX for every task.

A pod starts a fresh interpreter from the image and imports TFX's v2 entrypoint: 23 s on this
machine (2026-12-07 23:59, the import timed alone), nearly all of a small task's time, and the
Kubeflow test runs about thirty tasks. Here a forkserver (multiprocessing's) imports the entrypoint
once; each task is a process forked from it, which sets the task's environment and working
directory, sends its output to the task's log file, and runs the command's module as ``__main__``
with the command's arguments, as ``python -m`` does. What the task runs is the compiled command's
own code path from its first line; what it skips is the interpreter start and the imports.
Commands that are not ``python -m MODULE ...`` run as plain subprocesses.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
from pathlib import Path

# What every task imports first (pipeline.kfp_entrypoint's imports and TFX's two v2 entrypoints);
# ``patches`` first: Keras 2 before TensorFlow loads, as in the entrypoint itself.
PRELOAD = [
    "patches",
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver",
]

_context: multiprocessing.context.BaseContext | None = None


def _forkserver() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def _run_module(module: str, argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> None:
    """In the forked process: the task's environment, directory and log, then ``python -m module argv``."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.argv = [module, *argv]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 -- a task's uncaught error is its exit status, as in a pod
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no atexit handlers of the forkserver's imports: the task's own ran in run_module


def run_command(command: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> int:
    """Run ``command`` (``python -m MODULE ARGS`` forked from the preloaded server, anything else as a
    subprocess) with ``env`` in ``cwd``, stdout and stderr into ``log_path``; returns its exit code."""
    if len(command) >= 3 and command[0] in ("python", sys.executable) and command[1] == "-m":
        process = _forkserver().Process(target=_run_module, args=(command[2], command[3:], env, str(cwd), str(log_path)))
        process.start()
        process.join()
        return process.exitcode
    with open(log_path, "w") as log:  # the harness's own files
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd).returncode
