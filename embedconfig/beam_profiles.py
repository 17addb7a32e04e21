"""Beam arguments per runner: ``beam.runner`` + ``beam.options`` in the config -> ``beam_pipeline_args``.

Every Beam-based component (ExampleGen, StatisticsGen, Transform, Evaluator, ...) gets these args.
The project's code must reach the Beam workers, which differs per runner:

- ``direct`` (default): runs inside the component's process or pod; nothing to ship.
  ``direct_running_mode: auto`` (the default) is settled when the pipeline is built, from the
  input's size (pipeline/beam_mode.py): ``in_memory`` with one worker for small data,
  ``multi_processing`` with one worker per core past the measured crossover.
- ``dataflow``: workers start from ``sdk_container_image`` (the pipeline image, which has the
  project and its pinned dependencies installed); without it, ``setup_file`` builds and ships
  the project as a source package (the pinned TFX/TF still install on each worker).
- ``flink`` / ``spark`` / ``portable``: Beam's PortableRunner submits to a job server (Flink's,
  Spark's, or any other, e.g. Beam's own Python job service for ``portable``); SDK workers run in
  ``environment_type`` DOCKER (``environment_config`` = an SDK harness image with the project,
  built from apache/beam_python3.10_sdk:2.59.0) or EXTERNAL (``environment_config`` = host:port of
  a worker pool: ``embedpipe beam-worker-pool``, pipeline/beam_worker.py).
  ``job_server_timeout``: Beam 2.59 uses it (default 60 s) as the deadline of the job's state
  stream, so a Beam job over a minute failed with DEADLINE_EXCEEDED; a day here.
  Workers per job: Flink and Spark job servers read ``sdk_worker_parallelism``; Beam's Python job
  service asks for one per job whatever the options say (it calls FnApiRunner.run_via_runner_api,
  which never reads direct_num_workers: fn_runner.py reads it only in run_pipeline).
Required options are checked when the config loads and named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

RUNNERS = ("direct", "dataflow", "flink", "spark", "portable")
_JOB_SERVER_TIMEOUT_S = 86_400

# runner -> (required options, optional options with defaults); every option becomes --name=value
_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "direct": ((), {"direct_running_mode": "auto", "direct_num_workers": None}),
    "dataflow": (
        ("project", "region", "temp_location"),
        {"sdk_container_image": None, "setup_file": None, "machine_type": None, "max_num_workers": None,
         "experiments": "use_runner_v2", "service_account_email": None},
    ),
    "flink": (("job_endpoint",), {"environment_type": "DOCKER", "environment_config": None, "parallelism": None,
                                  "sdk_worker_parallelism": None, "artifact_endpoint": None,
                                  "job_server_timeout": _JOB_SERVER_TIMEOUT_S}),
    "spark": (("job_endpoint",), {"environment_type": "DOCKER", "environment_config": None, "sdk_worker_parallelism": None,
                                  "artifact_endpoint": None, "job_server_timeout": _JOB_SERVER_TIMEOUT_S}),
    "portable": (("job_endpoint",), {"environment_type": "EXTERNAL", "environment_config": None, "sdk_worker_parallelism": None,
                                     "artifact_endpoint": None, "job_server_timeout": _JOB_SERVER_TIMEOUT_S}),
}
AUTO = "auto"  # direct_running_mode left to pipeline/beam_mode.py
DIRECT_MODES = (AUTO, "in_memory", "multi_threading", "multi_processing")
_RUNNER_FLAG = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "PortableRunner", "spark": "PortableRunner",
                "portable": "PortableRunner"}
PORTABLE_RUNNERS = tuple(name for name, flag in _RUNNER_FLAG.items() if flag == "PortableRunner")


@dataclass(frozen=True)
class BeamArgs:
    """A runner's options with their defaults filled in, and the flags they become."""

    options: dict[str, Any]
    flags: tuple[str, ...]


def beam_args_for(runner: str, options: Mapping[str, Any], field: str = "beam.options") -> BeamArgs:
    """The options and ``--runner`` / option flags for ``runner``; ValueError naming ``field.<option>`` when wrong."""
    if runner not in RUNNERS:
        raise ValueError(f"beam.runner: {runner!r} is not one of {RUNNERS}")
    required, optional = _OPTIONS[runner]
    for name in required:
        if options.get(name) in (None, ""):
            raise ValueError(f"{field}.{name}: required for beam.runner {runner}")
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{field}.{unknown[0]}: not an option of beam.runner {runner}; known: {sorted(set(required) | set(optional))}")
    if runner == "direct" and options.get("direct_running_mode", AUTO) not in DIRECT_MODES:
        raise ValueError(f"{field}.direct_running_mode: {options['direct_running_mode']!r} is not one of {DIRECT_MODES}")
    if runner == "dataflow" and not (options.get("sdk_container_image") or options.get("setup_file")):
        raise ValueError(f"{field}.sdk_container_image: Dataflow workers need the project's code: give the pipeline image "
                         "(or setup_file: /embedpipe/setup.py)")
    if runner in PORTABLE_RUNNERS and not options.get("environment_config"):
        environment = options.get("environment_type", optional["environment_type"])
        if environment == "DOCKER":
            raise ValueError(f"{field}.environment_config: the SDK harness image with the project installed (see kubeflow/README.md)")
        if environment == "EXTERNAL":  # else Beam 2.59 fails later with a TypeError in environments.py
            raise ValueError(f"{field}.environment_config: host:port of the SDK worker pool (embedpipe beam-worker-pool)")
    filled = {name: options.get(name, default) for name, default in {**optional, **{k: None for k in required}}.items()}
    filled = {name: value for name, value in filled.items() if value is not None}
    return BeamArgs(filled, (f"--runner={_RUNNER_FLAG[runner]}",) + tuple(f"--{name}={value}" for name, value in filled.items()))


def runner_flag(runner: str) -> str:
    """Beam's ``--runner`` value for a config's ``beam.runner``."""
    return _RUNNER_FLAG[runner]
