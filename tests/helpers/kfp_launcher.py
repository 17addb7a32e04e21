"""Run a compiled KFP v2 PipelineSpec on this machine, task by task, the way KFP's launcher would.

What this stands in for, and what it does not:
- KFP's **driver/launcher**: for each task, as soon as its upstream tasks are done (several at
  once where the DAG allows, as KFP starts them), it builds the ``ExecutorInput`` from the
  spec (constant parameters, pipeline parameters with their declared defaults or the run's
  values, upstream output artifacts with their URIs and metadata), gives every output artifact a
  URI under the pipeline root, substitutes ``{{$}}`` in the compiled container args, runs the
  ``lifecycle.preCacheCheck`` command first when there is one (ExampleGen's driver), then the
  compiled container command itself (the TFX v2 entrypoint
  ``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``) in a process of its own, and reads
  the ``ExecutorOutput`` the entrypoint writes to pass artifacts and their metadata downstream.
- **Kubernetes platform spec**: ``secretAsEnv`` (kfp-kubernetes ``use_secret_as_env``) sets a
  task's environment variables from the named secret's keys, given here as a dict; a task gets
  no bucket credentials from this process's environment, as a pod gets none from the launcher.
- **ML Metadata**: every task's execution and output artifacts are recorded in an MLMD store
  (``metadata``, one per test, kept across runs as a cluster's is), each artifact under its type's
  schema title (``tfx.Model``), its URI, its runtime name and its metadata as custom properties.
- **Resolver tasks** (``outputArtifactQueries``, the latest-blessed-model resolvers) run their
  compiled filter against that store, as KFP's driver does: ``schema_title``, ``state``, ``name``
  and ``metadata.<key>.number_value`` / ``string_value`` clauses joined by AND, with the task's
  input placeholders filled in; the newest match, or nothing (a first run).
- **ExampleGen's driver** (``lifecycle.preCacheCheck``): its ExecutorOutput (the span it resolved,
  the input config with the span filled in, the Examples artifact's span) feeds the executor's
  parameters and output artifact, as the driver's results feed the task on a backend that runs it.
- **Each task in a process of its own**, forked from one that imported TFX's entrypoint once
  (tests/helpers/task_processes.py: the import is most of a small task's time), running the
  command's module with its arguments from the first line.
- Not shown here, only on a cluster: the container image itself (``python`` is this venv's
  interpreter, the image is not pulled), a fresh interpreter per task, KFP's caching, pod scheduling and resources. Object
  storage is shown: the pipeline root may be an ``s3://`` URI (tests/test_kubeflow.py runs it on
  a local S3-API server).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from pathlib import Path
from typing import Any

import ml_metadata as mlmd
import tensorflow as tf
import yaml
from ml_metadata.proto import metadata_store_pb2

from tests.helpers.s3_server import environment_without_buckets  # a pod has no bucket credentials
from tests.helpers.task_processes import run_command


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


def metadata_store(path: Path) -> mlmd.MetadataStore:
    """The cluster's ML Metadata, as a SQLite file (kept across runs)."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return mlmd.MetadataStore(config)


def _schema_title(artifact_type: dict[str, Any]) -> str:
    return artifact_type.get("schemaTitle") or yaml.safe_load(artifact_type["instanceSchema"])["title"]


def _record(store: mlmd.MetadataStore, task: str, run_id: str, inputs: dict[str, list[dict[str, Any]]],
            outputs: dict[str, list[dict[str, Any]]]) -> None:
    """One execution of ``task``, its input and output artifacts, as KFP's launcher publishes them."""
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="system.ContainerExecution"))
    execution = metadata_store_pb2.Execution(type_id=execution_type, name=f"{run_id}/{task}",
                                             last_known_state=metadata_store_pb2.Execution.COMPLETE)
    events = []
    for kind, artifacts in ((metadata_store_pb2.Event.INPUT, inputs), (metadata_store_pb2.Event.OUTPUT, outputs)):
        for key, listed in artifacts.items():
            for a in listed:
                if a.get("id") is None:  # a new output: publish it
                    type_id = store.put_artifact_type(metadata_store_pb2.ArtifactType(name=_schema_title(a["type"])))
                    stored = metadata_store_pb2.Artifact(type_id=type_id, uri=a["uri"], name=a["name"], state=metadata_store_pb2.Artifact.LIVE)
                    for k, v in a.get("metadata", {}).items():
                        if isinstance(v, (int, float)):  # bool too
                            stored.custom_properties[k].double_value = float(v)
                        elif isinstance(v, str):
                            stored.custom_properties[k].string_value = v
                    [a["id"]] = store.put_artifacts([stored])
                event = metadata_store_pb2.Event(type=kind, artifact_id=a["id"])
                event.path.steps.add().key = key
                events.append(event)
    execution_id = store.put_execution(execution, [], [])[0]
    store.put_events([metadata_store_pb2.Event(type=e.type, artifact_id=e.artifact_id, execution_id=execution_id, path=e.path)
                      for e in events])


_CLAUSE = re.compile(r'^(schema_title|state|name|metadata\.(\w+)\.(number_value|string_value))\s*=\s*(.+)$')


def _mlmd_filter(kfp_filter: str) -> str:
    """A compiled resolver's filter in MLMD's filter syntax."""
    clauses = []
    for clause in kfp_filter.split(" AND "):
        match = _CLAUSE.match(clause.strip())
        if not match:
            raise NotImplementedError(f"resolver filter clause {clause!r} of {kfp_filter!r}")
        field, key, kind, value = match.groups()
        if field == "schema_title":
            clauses.append(f"type = {value}")
        elif field in ("state", "name"):
            clauses.append(f"{field} = {value}")
        else:
            clauses.append(f"custom_properties.{key}.{'double_value' if kind == 'number_value' else 'string_value'} = {value}")
    return " AND ".join(clauses)


def _resolve(store: mlmd.MetadataStore, resolver: dict[str, Any], inputs: dict[str, list[dict[str, Any]]],
             output_defs: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A resolver task: each output's filter, with its input placeholders filled, against the store."""
    resolved: dict[str, list[dict[str, Any]]] = {}
    for key, query in resolver["outputArtifactQueries"].items():
        kfp_filter = query["filter"]
        for placeholder in re.findall(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}", kfp_filter):
            upstream = inputs.get(placeholder[0]) or [{}]
            value = upstream[0].get("metadata", {}).get(placeholder[1])
            if value is None:  # nothing upstream (no blessed model): nothing to resolve
                kfp_filter = None
                break
            artifact_key, metadata_key = placeholder
            kfp_filter = kfp_filter.replace("{{$.inputs.artifacts['" + artifact_key + "'].metadata['" + metadata_key + "']}}", str(value))
        found = [] if kfp_filter is None else store.get_artifacts(list_options=mlmd.ListOptions(
            filter_query=_mlmd_filter(kfp_filter), order_by=mlmd.OrderByField.ID, is_asc=False, limit=1))
        resolved[key] = [{"id": a.id, "name": a.name, "uri": a.uri, "type": output_defs[key]["artifactType"],
                          "metadata": {k: getattr(v, v.WhichOneof("value")) for k, v in a.custom_properties.items()}}
                         for a in found]
    return resolved


def run_pipeline_spec(
    spec: dict[str, Any],
    pipeline_root: str,
    work: Path,
    parameters: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    log=print,
    platform: dict[str, Any] | None = None,
    secrets: dict[str, dict[str, str]] | None = None,
    metadata: Path | None = None,
    run_id: str = "run-1",
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Run every task; returns task -> output key -> runtime artifacts (uri, name, type, metadata).

    ``platform``: the package's second YAML document (KFP's platform spec), if any; ``secrets``:
    secret name -> key -> value, what the cluster holds; ``metadata``: the ML Metadata SQLite file
    (default: one under ``work``), shared by the runs of one pipeline; ``run_id``: unique per run,
    in output URIs and artifact names.
    """
    store = metadata_store(metadata or work / "metadata.sqlite")
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    pipeline_params = {name: p.get("defaultValue") for name, p in declared.items()}
    pipeline_params.update(parameters or {})
    tasks = spec["root"]["dag"]["tasks"]
    needs = _needs(spec)
    produced: dict[str, dict[str, list[dict[str, Any]]]] = {}
    # As KFP does, every task whose upstream tasks are done starts at once (ExampleGen beside the
    # schema importer; ExampleValidator beside the drift gate): each in its own process.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        running: dict[concurrent.futures.Future, tuple[str, dict[str, Any], dict[str, Any]]] = {}
        while len(produced) < len(tasks):
            ready = sorted(n for n in tasks if n not in produced and n not in {r[0] for r in running.values()}
                           and needs[n] <= set(produced))
            if not ready and not running:
                raise ValueError(f"cycle among {sorted(set(tasks) - set(produced))}")
            for name in ready:
                task = tasks[name]
                component = spec["components"][task["componentRef"]["name"]]
                executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
                output_defs = component.get("outputDefinitions", {}).get("artifacts", {})
                input_artifacts = {}
                for key, a in task.get("inputs", {}).get("artifacts", {}).items():
                    upstream = produced[a["taskOutputArtifact"]["producerTask"]][a["taskOutputArtifact"]["outputArtifactKey"]]
                    if upstream:
                        input_artifacts[key] = upstream
                if "resolver" in executor:
                    produced[name] = _resolve(store, executor["resolver"], input_artifacts, output_defs)
                    log(f"[{name}] resolver: {[a['name'] for found in produced[name].values() for a in found]}")
                    continue
                inputs: dict[str, Any] = {"parameterValues": _parameters(task, pipeline_params),
                                          "artifacts": {key: {"artifacts": [_runtime(a) for a in found]}
                                                        for key, found in input_artifacts.items()}}
                outputs = {
                    key: {"artifacts": [{"name": f"{run_id}/{name}/{key}", "uri": f"{pipeline_root}/{run_id}/{name}/{key}",
                                         "type": d["artifactType"], "metadata": {}}]}
                    for key, d in output_defs.items()
                }
                for out in outputs.values():  # the pipeline root may be a bucket
                    tf.io.gfile.makedirs(out["artifacts"][0]["uri"])
                task_env = {**environment_without_buckets(), **(env or {}),
                            **_secret_env(platform, component["executorLabel"], secrets or {})}
                future = pool.submit(_run_task, name, executor["container"], inputs, outputs, task_env, work / "tasks" / name, log)
                running[future] = (name, input_artifacts, outputs)
            if not running:
                continue  # only resolvers were ready: look again
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                name, input_artifacts, outputs = running.pop(future)
                executor_output = future.result()  # a failed task raises here, after the running ones end
                produced[name] = {}
                for key, out in outputs.items():
                    written = executor_output.get("artifacts", {}).get(key, {}).get("artifacts", [])
                    artifact = dict(out["artifacts"][0])
                    if written:
                        artifact["metadata"] = written[0].get("metadata", {})
                    produced[name][key] = [artifact]
                _record(store, name, run_id, input_artifacts, produced[name])
    return produced


def _needs(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Task -> the tasks it waits for (its dependent tasks and its inputs' producers)."""
    tasks = spec["root"]["dag"]["tasks"]
    needs = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    for name, task in tasks.items():
        for a in task.get("inputs", {}).get("artifacts", {}).values():
            needs[name].add(a["taskOutputArtifact"]["producerTask"])
    return needs


def _run_task(name: str, container: dict[str, Any], inputs: dict[str, Any], outputs: dict[str, Any], env: dict[str, str],
              task_dir: Path, log) -> dict[str, Any]:
    """One container task: ExampleGen's driver first where there is one (its results feed the
    executor), then the executor; returns the ExecutorOutput it wrote."""
    task_dir.mkdir(parents=True, exist_ok=True)
    output_file = task_dir / "executor_output.json"
    if "lifecycle" in container and "preCacheCheck" in container["lifecycle"]:
        check = container["lifecycle"]["preCacheCheck"]
        executor_input = json.dumps({"inputs": inputs, "outputs": {"artifacts": outputs, "outputFile": str(output_file)}})
        _run_step(name, "driver", check["command"] + _substitute(check["args"], executor_input), env, task_dir, log)
        driven = json.loads(output_file.read_text())
        inputs["parameterValues"].update(driven.get("parameterValues", {}))
        for key, written in driven.get("artifacts", {}).items():
            outputs[key]["artifacts"][0]["metadata"] = written["artifacts"][0].get("metadata", {})
        output_file.unlink()
    executor_input = json.dumps({"inputs": inputs, "outputs": {"artifacts": outputs, "outputFile": str(output_file)}})
    _run_step(name, "executor", container["command"] + _substitute(container["args"], executor_input), env, task_dir, log)
    return json.loads(output_file.read_text()) if output_file.exists() else {}


def _runtime(artifact: dict[str, Any]) -> dict[str, Any]:
    """An artifact as an ExecutorInput lists it (without the store's id)."""
    return {k: v for k, v in artifact.items() if k != "id"}


def _run_step(task: str, kind: str, command: list[str], env: dict[str, str], task_dir: Path, log) -> None:
    """One command of a task, in a process of its own (tests/helpers/task_processes.py), its output in ``<kind>.log``."""
    log(f"[{task}] {kind}: {' '.join(command[:3])} ...")
    log_path = task_dir / f"{kind}.log"
    code = run_command(command, env, task_dir, log_path)
    if code != 0:
        raise RuntimeError(f"task {task} ({kind}) failed with {code}:\n{log_path.read_text()[-4000:]}")
