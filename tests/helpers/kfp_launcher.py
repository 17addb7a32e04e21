"""Run a compiled KFP v2 PipelineSpec on this machine, task by task, the way KFP's launcher would.

What this stands in for, and what it does not:
- KFP's **driver/launcher**: for each task, in DAG order, it builds the ``ExecutorInput`` from the
  spec (constant parameters, pipeline parameters with their declared defaults or the run's
  values, upstream output artifacts with their URIs and metadata), gives every output artifact a
  URI under the pipeline root, substitutes ``{{$}}`` in the compiled container args, runs the
  ``lifecycle.preCacheCheck`` command first when there is one (ExampleGen's driver), then the
  compiled container command itself (the TFX v2 entrypoint
  ``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``) as a subprocess, and reads
  the ``ExecutorOutput`` the entrypoint writes to pass artifacts and their metadata downstream.
- **Kubernetes platform spec**: ``secretAsEnv`` (kfp-kubernetes ``use_secret_as_env``) sets a
  task's environment variables from the named secret's keys, given here as a dict; a task gets
  no bucket credentials from this process's environment, as a pod gets none from the launcher.
- **Resolver tasks** (``outputArtifactQueries``, the latest-blessed-model resolver): resolved as
  KFP's driver would on a pipeline's first run: no blessed model yet, so no artifacts.
- Not shown here, only on a cluster: the container image itself (``python`` is this venv's
  interpreter, the image is not pulled), KFP's MLMD and caching, pod scheduling and resources,
  and a second run resolving the first run's blessed model. Object storage is shown: the
  pipeline root may be an ``s3://`` URI (tests/test_kubeflow.py runs it on a local S3-API server).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from tests.helpers.s3_server import environment_without_buckets  # a pod has no bucket credentials


def topological_order(spec: dict[str, Any]) -> list[str]:
    """Task names so that every task comes after the tasks it depends on (by edges and inputs)."""
    tasks = spec["root"]["dag"]["tasks"]
    needs = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    for name, task in tasks.items():
        for a in task.get("inputs", {}).get("artifacts", {}).values():
            needs[name].add(a["taskOutputArtifact"]["producerTask"])
    order: list[str] = []
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in order and needs[n] <= set(order))
        if not ready:
            raise ValueError(f"cycle among {sorted(set(tasks) - set(order))}")
        order += ready
    return order


def _parameters(task: dict[str, Any], pipeline_params: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, p in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in p:
            values[name] = p["runtimeValue"]["constant"]
        elif "componentInputParameter" in p:
            values[name] = pipeline_params[p["componentInputParameter"]]
        else:
            raise NotImplementedError(f"parameter {name}: {p}")
    return values


def _substitute(args: list[str], executor_input: str) -> list[str]:
    return [executor_input if a == "{{$}}" else a for a in args]


def _secret_env(platform: dict[str, Any] | None, executor_label: str, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The environment variables the platform spec's ``secretAsEnv`` gives this executor."""
    executors = (platform or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    env = {}
    for source in executors.get(executor_label, {}).get("secretAsEnv", []):
        if source["secretName"] not in secrets:  # Kubernetes would not start the pod
            raise RuntimeError(f"{executor_label}: secret {source['secretName']!r} not found")
        for mapping in source["keyToEnv"]:
            env[mapping["envVar"]] = secrets[source["secretName"]][mapping["secretKey"]]
    return env


def _command(command: list[str]) -> list[str]:
    # the image's "python" is this interpreter here
    return [sys.executable if c == "python" else c for c in command]


def run_pipeline_spec(
    spec: dict[str, Any],
    pipeline_root: str,
    work: Path,
    parameters: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    log=print,
    platform: dict[str, Any] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Run every task; returns task -> output key -> runtime artifacts (uri, name, type, metadata).

    ``platform``: the package's second YAML document (KFP's platform spec), if any; ``secrets``:
    secret name -> key -> value, what the cluster holds.
    """
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    pipeline_params = {name: p.get("defaultValue") for name, p in declared.items()}
    pipeline_params.update(parameters or {})
    tasks = spec["root"]["dag"]["tasks"]
    produced: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in topological_order(spec):
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        output_defs = component.get("outputDefinitions", {}).get("artifacts", {})
        if "resolver" in executor:  # first run: nothing blessed to resolve
            produced[name] = {key: [] for key in output_defs}
            log(f"[{name}] resolver: no artifacts (first run)")
            continue
        container = executor["container"]
        inputs: dict[str, Any] = {"parameterValues": _parameters(task, pipeline_params), "artifacts": {}}
        for key, a in task.get("inputs", {}).get("artifacts", {}).items():
            upstream = produced[a["taskOutputArtifact"]["producerTask"]][a["taskOutputArtifact"]["outputArtifactKey"]]
            if upstream:
                inputs["artifacts"][key] = {"artifacts": upstream}
        outputs = {
            key: {"artifacts": [{"name": f"{name}-{key}", "uri": f"{pipeline_root}/{name}/{key}", "type": d["artifactType"], "metadata": {}}]}
            for key, d in output_defs.items()
        }
        for out in outputs.values():  # the pipeline root may be a bucket
            tf.io.gfile.makedirs(out["artifacts"][0]["uri"])
        task_dir = work / "tasks" / name
        task_dir.mkdir(parents=True, exist_ok=True)
        output_file = task_dir / "executor_output.json"
        executor_input = json.dumps({"inputs": inputs, "outputs": {"artifacts": outputs, "outputFile": str(output_file)}})
        steps = []
        if "lifecycle" in container and "preCacheCheck" in container["lifecycle"]:
            check = container["lifecycle"]["preCacheCheck"]
            steps.append(("driver", _command(check["command"]) + _substitute(check["args"], executor_input)))
        steps.append(("executor", _command(container["command"]) + _substitute(container["args"], executor_input)))
        for kind, command in steps:
            log(f"[{name}] {kind}: {' '.join(command[:3])} ...")
            task_env = {**environment_without_buckets(), **(env or {}), **_secret_env(platform, component["executorLabel"], secrets or {})}
            result = subprocess.run(command, capture_output=True, text=True, env=task_env, cwd=task_dir)
            (task_dir / f"{kind}.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0:
                raise RuntimeError(f"task {name} ({kind}) failed with {result.returncode}:\n{result.stderr[-4000:]}")
        executor_output = json.loads(output_file.read_text()) if output_file.exists() else {}
        produced[name] = {}
        for key, out in outputs.items():
            written = executor_output.get("artifacts", {}).get(key, {}).get("artifacts", [])
            artifact = dict(out["artifacts"][0])
            if written:
                artifact["metadata"] = written[0].get("metadata", {})
            produced[name][key] = [artifact]
    return produced
