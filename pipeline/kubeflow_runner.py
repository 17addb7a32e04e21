"""Compile the pipeline for Kubeflow Pipelines (KFP v2 PipelineSpec) and submit runs.

The pipeline is the local one: the same ``create_pipeline`` builds it from the same config, with
run-time parameters (``epochs``, ``learning_rate``, ``eval_config``) instead of fixed values, no
metadata connection (KFP brings its own MLMD) and paths rewritten for the pods:
- the pipeline root is the object-store URI given (gs://, s3://);
- every task runs TFX's entrypoint through ``pipeline.kfp_entrypoint``, which registers s3://;
- files of this repository (the schema) are read from the image, where the Dockerfile puts the
  repository at ``IMAGE_REPO_ROOT``;
- data and the Pusher's base directory are given as URIs or paths mounted in the pods.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from embedconfig.config import PipelineConfig, replace
from pipeline.kfp_entrypoint import wrap_command
from pipeline.pipeline_factory import create_pipeline, runtime_parameter_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_REPO_ROOT = "/embedpipe"  # where kubeflow/Dockerfile copies this repository
# The standard variables boto3, Beam and (through storage/) tensorflow-io read: a bucket's
# credentials, endpoint (MinIO) and region, as keys of one Kubernetes secret by default.
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION")


def in_image(path: str, image_repo_root: str = IMAGE_REPO_ROOT) -> str:
    """A path of this repository as the image sees it; other paths and URIs unchanged."""
    if "://" in path:
        return path
    try:
        relative = Path(path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return path
    return f"{image_repo_root.rstrip('/')}/{relative.as_posix()}"


def kubeflow_config(config: PipelineConfig, pipeline_root: str, data: str | None = None, push_base: str | None = None,
                    image_repo_root: str = IMAGE_REPO_ROOT) -> PipelineConfig:
    """The config with the paths pods use."""
    return replace(
        config,
        pipeline=replace(config.pipeline, root=pipeline_root),
        schema=in_image(config.schema, image_repo_root),
        data=replace(config.data, path=in_image(data or config.data.path, image_repo_root)),
        push=replace(config.push, base_directory=in_image(push_base or config.push.base_directory, image_repo_root)),
    )


def secret_env_platform_spec(executor_labels: list[str], secret_name: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """KFP's Kubernetes platform spec (kfp-kubernetes ``use_secret_as_env``) giving every executor
    the secret's ``keys`` as environment variables of the same names. Only names, never values."""
    def entry() -> list[dict[str, Any]]:  # one object per executor: shared ones become YAML anchors
        return [{"secretName": secret_name, "keyToEnv": [{"secretKey": k, "envVar": k} for k in keys]}]

    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {label: {"secretAsEnv": entry()} for label in executor_labels}}}}}


def compile_kubeflow(config: PipelineConfig, image: str, pipeline_root: str, output: str, data: str | None = None,
                     push_base: str | None = None, image_repo_root: str = IMAGE_REPO_ROOT,
                     env_secret: tuple[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """Write the PipelineSpec (YAML for .yaml/.yml, else PipelineJob JSON); returns the job dict.

    ``image_repo_root``: where the image holds this repository (kubeflow/Dockerfile: /embedpipe).
    ``env_secret``: (secret name, keys): a Kubernetes secret whose keys every task gets as
    environment variables, written as KFP's platform spec (a second YAML document).
    """
    from embedconfig.config import ConfigError

    if env_secret and not output.endswith((".yaml", ".yml")):
        raise ConfigError("--env-secret", "a Kubernetes secret goes into a .yaml package (KFP's platform spec), not a PipelineJob JSON")
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    pods_config = kubeflow_config(config, pipeline_root, data, push_base, image_repo_root)
    pipeline = create_pipeline(pods_config, metadata_connection_config=None, compiled=True)
    runner = v2.KubeflowV2DagRunner(
        # schema 2.1: what KFP 2 backends run, and the only one TFX 1.16 can write as YAML
        config=v2.KubeflowV2DagRunnerConfig(default_image=image, use_pipeline_spec_2_1=True),
    )
    job = runner.run(pipeline, write_out=False)
    # TFX keeps parameter defaults in the job's runtimeConfig, which a YAML package drops: declare
    # them in the spec itself, where KFP reads them.
    declared = job["pipelineSpec"]["root"].setdefault("inputDefinitions", {}).setdefault("parameters", {})
    for name, (_, default) in runtime_parameter_defaults(config).items():
        declared[name]["defaultValue"] = default
    # Every task (and ExampleGen's driver) runs TFX's entrypoint through ours: s3:// for all of them.
    for executor in job["pipelineSpec"]["deploymentSpec"]["executors"].values():
        container = executor.get("container")
        if container:
            container["command"] = wrap_command(container["command"])
            check = container.get("lifecycle", {}).get("preCacheCheck")
            if check:
                check["command"] = wrap_command(check["command"])
    platform = None
    if env_secret:
        containers = [label for label, e in job["pipelineSpec"]["deploymentSpec"]["executors"].items() if "container" in e]
        platform = secret_env_platform_spec(sorted(containers), *env_secret)
    write_job(job, output, platform)
    return job


def write_job(job: dict[str, Any], output: str, platform: dict[str, Any] | None = None) -> None:
    """A .yaml/.yml path gets the PipelineSpec as YAML (what the KFP UI and client upload), with
    ``platform`` as a second document when given; else the job JSON."""
    import tensorflow as tf
    import yaml

    tf.io.gfile.makedirs(os.path.dirname(output) or ".")
    with tf.io.gfile.GFile(output, "w") as f:
        if output.endswith((".yaml", ".yml")):
            f.write(f"# PIPELINE DEFINITION\n# Name: {job['pipelineSpec']['pipelineInfo']['name']}\n"
                    "# Compiled by `embedpipe compile kubeflow` (TFX KubeflowV2DagRunner); do not edit by hand.\n")
            yaml.safe_dump_all([job["pipelineSpec"]] + ([platform] if platform else []), f, sort_keys=True)
        else:
            json.dump(job, f, sort_keys=True, indent=1)


def parse_params(pairs: list[str], config: PipelineConfig | None, thresholds: list[str]) -> dict[str, Any]:
    """``k=v`` run-time parameters (typed by the pipeline's parameters), plus ``METRIC=LOWER`` thresholds."""
    from embedconfig.config import ConfigError

    types = {name: ptype for name, (ptype, _) in runtime_parameter_defaults(config).items()} if config else {}
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError("--param", f"{pair!r} is not NAME=VALUE")
        ptype = types.get(name, str)
        try:
            values[name] = ptype(value)
        except ValueError as e:
            raise ConfigError(f"--param {name}", f"{value!r} is not a {ptype.__name__}") from e
    if thresholds:
        if config is None:
            raise ConfigError("--threshold", "needs --config to rebuild the EvalConfig")
        from pipeline.eval_config import eval_config_json

        bounds = {k: dict(v) for k, v in config.evaluation.value_thresholds.items()}
        for pair in thresholds:
            metric, sep, value = pair.partition("=")
            if not sep:
                raise ConfigError("--threshold", f"{pair!r} is not METRIC=LOWER_BOUND")
            bounds.setdefault(metric, {})["lower_bound"] = float(value)
        evaluation = replace(config.evaluation, value_thresholds=bounds)
        values["eval_config"] = eval_config_json(evaluation)
    return values


def submit(host: str, pipeline_file: str, experiment: str | None, params: dict[str, Any], run_name: str | None = None) -> str:
    """Upload-and-run with the KFP client; returns the run id."""
    import kfp

    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        pipeline_file, arguments=params, run_name=run_name, experiment_name=experiment or "embedpipe", enable_caching=True
    )
    return result.run_id


def describe(job: dict[str, Any]) -> str:
    """One line per task of a compiled job, for the CLI."""
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    params = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
    lines = [f"{len(tasks)} tasks: {', '.join(sorted(tasks))}", f"run-time parameters: {', '.join(sorted(params))}"]
    return "\n".join(lines) + "\n" + json.dumps({k: v.get("defaultValue") for k, v in params.items() if k != "eval_config"})
