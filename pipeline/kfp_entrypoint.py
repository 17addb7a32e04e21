"""The command every compiled Kubeflow task runs: TFX's own entrypoint, with object storage enabled.

    python -m pipeline.kfp_entrypoint tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor ARGS...

TFX's v2 entrypoints (the executor runner and ExampleGen's driver) import only TFX, so in a pod
nothing would register ``s3://`` with TensorFlow's file system layer for StatisticsGen or the
Pusher (tfx#4537), and every task that touched a bucket would abort at exit
(patches.stop_tfio_exit_abort). This wrapper enables both (and keeps AutoGraph out of tf_keras:
patches.exclude_tf_keras_from_autograph), then runs the TFX module unchanged as
``__main__`` with the remaining arguments; its exit code is the task's.
"""

from __future__ import annotations

import runpy
import sys

import patches  # TF_USE_LEGACY_KERAS=1 before TensorFlow loads
from storage import enable_object_storage

MODULE = "pipeline.kfp_entrypoint"


def wrap_command(command: list[str]) -> list[str]:
    """``python -m TFX_MODULE`` -> ``python -m pipeline.kfp_entrypoint TFX_MODULE`` (other commands unchanged)."""
    if len(command) == 3 and command[:2] == ["python", "-m"] and command[2] != MODULE:
        return ["python", "-m", MODULE, command[2]]
    return list(command)


def main(argv: list[str]) -> None:
    """Run module ``argv[0]`` as ``__main__`` with arguments ``argv[1:]``."""
    if not argv:
        raise SystemExit(f"usage: python -m {MODULE} MODULE [ARGS...]")
    enable_object_storage(beam=True)
    patches.exclude_tf_keras_from_autograph()  # the Trainer's and the Evaluator's tf_keras code
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
