"""Beam arguments per runner: ``beam.runner`` + ``beam.options`` in the config -> ``beam_pipeline_args``.

Every Beam-based component (ExampleGen, StatisticsGen, Transform, Evaluator, ...) gets these args.
The project's code must reach the Beam workers, which differs per runner:

- ``direct`` (default): runs inside the component's process or pod; nothing to ship.
- ``dataflow``: workers start from ``sdk_container_image`` (the pipeline image, which has the
  project and its pinned dependencies installed); without it, ``setup_file`` builds and ships
  the project as a source package (the pinned TFX/TF still install on each worker).
- ``flink`` / ``spark``: the portable runner submits to a job server; SDK workers run in
  ``environment_type`` DOCKER (``environment_config`` = an SDK harness image with the project,
  built from apache/beam_python3.10_sdk:2.59.0) or EXTERNAL (a worker pool sidecar).
Required options are checked when the config loads and named in the error.
"""

from __future__ import annotations

from typing import Any, Mapping

RUNNERS = ("direct", "dataflow", "flink", "spark")

# runner -> (required options, optional options with defaults); every option becomes --name=value
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "direct": ((), {"direct_running_mode": "in_memory", "direct_num_workers": 1}),
    "dataflow": (
        ("project", "region", "temp_location"),
        {"sdk_container_image": None, "setup_file": None, "machine_type": None, "max_num_workers": None,
         "experiments": "use_runner_v2", "service_account_email": None},
    ),
    "flink": (("job_endpoint",), {"environment_type": "DOCKER", "environment_config": None, "parallelism": None,
                                  "artifact_endpoint": None}),
    "spark": (("job_endpoint",), {"environment_type": "DOCKER", "environment_config": None, "artifact_endpoint": None}),
}
_RUNNER_FLAG = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "PortableRunner", "spark": "PortableRunner"}


def beam_args_for(runner: str, options: Mapping[str, Any], field: str = "beam.options") -> list[str]:
    """The ``--runner`` and option flags for ``runner``; ValueError naming ``field.<option>`` when wrong."""
    if runner not in RUNNERS:
        raise ValueError(f"beam.runner: {runner!r} is not one of {RUNNERS}")
    required, optional = _OPTIONS[runner]
    for name in required:
        if options.get(name) in (None, ""):
            raise ValueError(f"{field}.{name}: required for beam.runner {runner}")
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{field}.{unknown[0]}: not an option of beam.runner {runner}; known: {sorted(set(required) | set(optional))}")
    if runner == "dataflow" and not (options.get("sdk_container_image") or options.get("setup_file")):
        raise ValueError(f"{field}.sdk_container_image: Dataflow workers need the project's code: give the pipeline image "
                         "(or setup_file: /embedpipe/setup.py)")
    if runner in ("flink", "spark") and options.get("environment_type", "DOCKER") == "DOCKER" and not options.get("environment_config"):
        raise ValueError(f"{field}.environment_config: the SDK harness image with the project installed (see kubeflow/README.md)")
    args = [f"--runner={_RUNNER_FLAG[runner]}"]
    for name, default in {**optional, **{k: None for k in required}}.items():
        value = options.get(name, default)
        if value is not None:
            args.append(f"--{name}={value}")
    return args
