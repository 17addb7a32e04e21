"""The Kubeflow pipeline: compiled by `embedpipe compile kubeflow`, checked for structure, then run.

Structural: the YAML parses into a KFP ``PipelineSpec`` whose tasks and edges are the local
pipeline's (same factory, same config), every executor runs the pipeline image through the TFX v2
entrypoint (behind pipeline.kfp_entrypoint) with the project's module code, and the run-time
parameters carry the config's values as defaults. Executable: tests/helpers/kfp_launcher.py runs every
compiled task through its compiled container command on this machine, as KFP's launcher would,
with data, pipeline root and push base on a local S3-API server, and the pushed model answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from embedconfig.config import PipelineConfig, WindowConfig, load_config, replace
from pipeline.cli import main as cli_main
from pipeline.kubeflow_runner import IMAGE_REPO_ROOT, S3_SECRET_KEYS, compile_kubeflow, parse_params
from pipeline.pipeline_factory import (
    BASELINE_RESOLVER,
    DRIFT_GATE,
    EXAMPLE_GEN,
    PREVIOUS_STATISTICS,
    SPAN_WINDOW,
    TRAINER,
    TRANSFORM_CACHE,
    WARM_START_RESOLVER,
    create_pipeline,
)
from tests.helpers.kfp_launcher import run_pipeline_spec

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synthetic.yaml"
IMAGE = "registry.example.com/embedpipe:test"
ENTRYPOINT = ["python", "-m", "pipeline.kfp_entrypoint", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The PipelineSpec dict written by the CLI."""
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    code = cli_main(["compile", "kubeflow", "--config", str(CONFIG), "--image", IMAGE, "--pipeline-root", "gs://bucket/root",
                     "--output", str(out), "--data", "gs://bucket/data/", "--push-base", "/models"])
    assert code == 0
    return yaml.safe_load(out.read_text())


def _task_node(name: str) -> str:
    return BASELINE_RESOLVER if name.startswith(BASELINE_RESOLVER) else name  # KFP splits the resolver in two


def test_yaml_parses_into_a_pipeline_spec(compiled: dict) -> None:
    spec = json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == load_config(CONFIG).pipeline.name
    assert spec.schema_version == "2.1.0"


def test_tasks_and_edges_are_the_local_pipelines(compiled: dict, tmp_path: Path) -> None:
    from pipeline.datasets.synthetic import write_synthetic

    write_synthetic(str(tmp_path / "data"), rows=10)  # the local pipeline checks its input files exist
    local = create_pipeline(load_config(CONFIG).with_data_path(str(tmp_path / "data")))
    local_nodes = {c.id for c in local.components}
    local_edges = {(up.id, c.id) for c in local.components for up in c.upstream_nodes}
    tasks = compiled["root"]["dag"]["tasks"]
    assert {_task_node(n) for n in tasks} == local_nodes
    kfp_edges = set()
    for name, task in tasks.items():
        upstream = set(task.get("dependentTasks", []))
        upstream |= {a["taskOutputArtifact"]["producerTask"] for a in task.get("inputs", {}).get("artifacts", {}).values()}
        kfp_edges |= {(_task_node(u), _task_node(name)) for u in upstream if _task_node(u) != _task_node(name)}
    # One known difference: locally the baseline resolver reads the Trainer's model to leave the
    # candidate out (components/baseline_strategy.py); Kubeflow's compiler only knows TFX's strategy.
    assert kfp_edges == local_edges - {(TRAINER, BASELINE_RESOLVER)}
    assert (TRAINER, BASELINE_RESOLVER) in local_edges


def test_every_executor_runs_the_image_through_the_tfx_v2_entrypoint(compiled: dict) -> None:
    executors = compiled["deploymentSpec"]["executors"]
    containers = {label: e["container"] for label, e in executors.items() if "container" in e}
    assert len(containers) == len(executors) - 2, "all but the two resolver queries are containers"
    for label, container in containers.items():
        assert container["image"] == IMAGE, label
        assert container["command"] == ENTRYPOINT, label
        assert "--executor_class_path" in container["args"] and "{{$}}" in container["args"], label
        if "lifecycle" in container:  # ExampleGen's driver reads the input files: s3:// there too
            assert container["lifecycle"]["preCacheCheck"]["command"][:3] == ENTRYPOINT[:3], label
    classes = {label: c["args"][c["args"].index("--executor_class_path") + 1] for label, c in containers.items()}
    assert classes["ExampleGen_executor"] == "components.example_gen.RawExampleGenExecutor"
    assert classes["SchemaGate_executor"].startswith("components.schema_gate.")
    assert classes["ServingCanary_executor"].startswith("components.serving_canary.")
    tasks = compiled["root"]["dag"]["tasks"]
    constant = lambda task, p: tasks[task]["inputs"]["parameters"][p]["runtimeValue"]["constant"]  # noqa: E731
    assert constant("Transform", "preprocessing_fn") == "models.preprocessing.preprocessing_fn"
    assert constant("Trainer", "run_fn") == "models.trainer.run_fn"
    assert constant("SchemaImporter", "schema_file") == f"{IMAGE_REPO_ROOT}/schema/synthetic.pbtxt"
    assert constant("ExampleGen", "input_base") == "gs://bucket/data"
    assert "/models/synthetic" in constant("Pusher", "push_destination")


def test_a_secret_reaches_every_task_as_environment_variables_by_name_only(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.yaml"
    code = cli_main(["compile", "kubeflow", "--config", str(CONFIG), "--image", IMAGE, "--pipeline-root", "s3://bucket/root",
                     "--output", str(out), "--env-secret", "embedpipe-s3"])
    assert code == 0
    spec, platform = yaml.safe_load_all(out.read_text())
    parsed = json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())  # what the kfp client uploads with it
    executors = parsed.platforms["kubernetes"].deployment_spec.executors
    containers = {label for label, e in spec["deploymentSpec"]["executors"].items() if "container" in e}
    assert set(executors) == containers
    for label in containers:
        (source,) = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]["secretAsEnv"]
        assert source["secretName"] == "embedpipe-s3"
        assert [(m["secretKey"], m["envVar"]) for m in source["keyToEnv"]] == [(k, k) for k in S3_SECRET_KEYS]
    assert cli_main(["compile", "kubeflow", "--config", str(CONFIG), "--image", IMAGE, "--pipeline-root", "s3://b/r",
                     "--output", str(tmp_path / "job.json"), "--env-secret", "s"]) == 2  # no platform spec in a PipelineJob


def test_compiling_needs_no_local_data(tmp_path: Path) -> None:
    """configs/movielens.yaml names split files under a local folder this machine may not have."""
    out = tmp_path / "movielens.yaml"
    code = cli_main(["compile", "kubeflow", "--config", str(REPO / "configs" / "movielens.yaml"), "--image", IMAGE,
                     "--pipeline-root", "s3://bucket/root", "--output", str(out)])
    assert code == 0
    tasks = yaml.safe_load(out.read_text())["root"]["dag"]["tasks"]
    assert tasks["ExampleGen"]["inputs"]["parameters"]["input_base"]["runtimeValue"]["constant"] == f"{IMAGE_REPO_ROOT}/runs/movielens/examples"


def _daily(config: PipelineConfig) -> PipelineConfig:
    """The built-in config on a span a day: a window of 2 spans, warm-started."""
    return replace(config, data=replace(config.data, path="../runs/synthetic/days/span-{SPAN}/", window=WindowConfig(spans=2)),
                   training=replace(config.training, warm_start=True))


def test_a_config_with_spans_compiles_with_example_gen_reading_the_window(tmp_path: Path) -> None:
    """TFX's Kubeflow V2 compiler compiles only TFX's latest-artifact and latest-blessed-model resolvers
    (docs/KUBEFLOW.md, "Spans"): the window and the previous span come from ExampleGen instead."""
    compile_kubeflow(_daily(load_config(CONFIG)), IMAGE, "s3://bucket/root", str(tmp_path / "daily.yaml"),
                     data="s3://bucket/days/span-{SPAN}/")
    spec = yaml.safe_load((tmp_path / "daily.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert {SPAN_WINDOW, PREVIOUS_STATISTICS, TRANSFORM_CACHE}.isdisjoint(tasks)
    assert DRIFT_GATE in tasks and "previous_statistics" not in tasks[DRIFT_GATE]["inputs"].get("artifacts", {})
    assert tasks["Transform"]["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]["producerTask"] == EXAMPLE_GEN
    assert any(n.startswith(WARM_START_RESOLVER) for n in tasks), "the Trainer's base model: TFX's LatestBlessedModelStrategy"
    custom = json.loads(tasks[EXAMPLE_GEN]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"])
    window = custom["custom_config"]["value"]["embedpipe"]["window"]
    assert window == {"spans": 2, "patterns": {"single_split": "span-{SPAN}/*"}}
    assert tasks[EXAMPLE_GEN]["inputs"]["parameters"]["input_base"]["runtimeValue"]["constant"] == "s3://bucket/days"


def test_run_time_parameters_are_declared_with_the_configs_defaults(compiled: dict) -> None:
    config = load_config(CONFIG)
    declared = compiled["root"]["inputDefinitions"]["parameters"]
    assert declared["epochs"] == {"parameterType": "NUMBER_INTEGER", "defaultValue": config.training.epochs}
    assert declared["learning_rate"] == {"parameterType": "NUMBER_DOUBLE", "defaultValue": config.training.learning_rate}
    eval_config = json_format.Parse(declared["eval_config"]["defaultValue"], tfma.EvalConfig())
    auc = next(m for m in eval_config.metrics_specs[0].metrics if m.class_name == "AUC")
    (overall,) = auc.per_slice_thresholds  # gated on the overall slice only (pipeline/eval_config.py)
    assert overall.threshold.value_threshold.lower_bound.value == config.evaluation.value_thresholds["AUC"]["lower_bound"]
    tasks = compiled["root"]["dag"]["tasks"]
    assert tasks["RunParameters"]["inputs"]["parameters"]["epochs"] == {"componentInputParameter": "epochs"}
    assert tasks["Evaluator"]["inputs"]["parameters"]["eval_config"] == {"componentInputParameter": "eval_config"}


def test_submit_parameters_are_typed_and_thresholds_rebuild_the_eval_config() -> None:
    config = load_config(CONFIG)
    params = parse_params(["epochs=3", "learning_rate=0.01"], config, ["AUC=0.8"])
    assert params["epochs"] == 3 and params["learning_rate"] == 0.01
    eval_config = json_format.Parse(params["eval_config"], tfma.EvalConfig())
    auc = next(m for m in eval_config.metrics_specs[0].metrics if m.class_name == "AUC")
    assert auc.per_slice_thresholds[0].threshold.value_threshold.lower_bound.value == 0.8
    with pytest.raises(Exception, match="epochs"):
        parse_params(["epochs=many"], config, [])


@pytest.fixture(scope="module")
def two_days_on_kubeflow(s3, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compiled daily pipeline run through its container commands on day 1, then again, the same
    spec, when day 2 has landed (a recurring run): data (a span a day), pipeline root and push base on
    the local S3-API server as on Kubeflow with MinIO, ML Metadata kept between the runs."""
    from pipeline.datasets.synthetic import write_synthetic_spans

    work = tmp_path_factory.mktemp("kfp_days")
    bucket = "embedpipe-kfp"
    s3.client().create_bucket(Bucket=bucket)
    days = write_synthetic_spans(str(work / "days"), 1500, spans=2)
    root = f"s3://{bucket}/root"
    config = _daily(load_config(CONFIG))
    job = compile_kubeflow(config, IMAGE, root, str(work / "pipeline.yaml"), data=f"s3://{bucket}/days/span-{{SPAN}}/",
                           push_base=f"s3://{bucket}/serving", image_repo_root=str(REPO),  # the harness's "image" is this checkout
                           env_secret=("embedpipe-s3", S3_SECRET_KEYS))
    package = (work / "pipeline.yaml").read_text()
    spec, platform = yaml.safe_load_all(package)
    run_params = parse_params(["epochs=1"], config, ["AUC=0.55"])
    runs = {"spec": spec, "job": job, "package": package, "bucket": bucket}
    for day, path in enumerate(days, start=1):
        s3.client().upload_file(path, bucket, f"days/span-{day}/examples.jsonl")
        # The bucket's credentials and endpoint reach the tasks only through the secret, as on a cluster.
        runs[day] = run_pipeline_spec(spec, root, work / f"run-{day}", parameters=run_params,
                                      env={"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}, log=lambda _: None,
                                      platform=platform, secrets={"embedpipe-s3": s3.env()},
                                      metadata=work / "metadata.sqlite", run_id=f"run-{day}")
    return runs


@pytest.mark.e2e
def test_compiled_pipeline_runs_through_its_container_commands_on_a_bucket(s3, two_days_on_kubeflow: dict) -> None:
    """Day 1: from the raw data in the bucket to a pushed model that answers."""
    runs = two_days_on_kubeflow
    spec, bucket, produced = runs["spec"], runs["bucket"], runs[1]
    assert spec == json.loads(json.dumps(runs["job"]["pipelineSpec"]))
    assert all(value not in runs["package"] for value in s3.env().values()), "only the secret's name and keys are compiled in"

    pushed = produced["Pusher"]["pushed_model"][0]["metadata"]
    assert pushed["pushed"] == 1, produced["Evaluator"]["blessing"]
    assert produced["ServingCanary"]["blessing"][0]["metadata"]["blessed"] == 1
    model_dir = pushed["pushed_destination"]
    assert model_dir.startswith(f"s3://{bucket}/serving/synthetic/")
    with tf.io.gfile.GFile(f"{model_dir}/assets.extra/embedpipe/training.json") as f:
        training = json.load(f)
    assert training["epochs_run"] == 1, "the run-time parameter reached the Trainer"
    assert any(k.startswith("root/run-1/Transform/") for k in s3.keys(bucket)), "artifacts are in the bucket"

    example = tf.train.Example()
    example.features.feature["user"].bytes_list.value.append(b"u1")
    example.features.feature["history"].int64_list.value.extend([5, 17, 29])
    example.features.feature["target"].int64_list.value.append(13)
    scores = tf.saved_model.load(model_dir).signatures["serving_default"](examples=tf.constant([example.SerializeToString()]))
    assert 0.0 < float(scores["probability"][0, 0]) < 1.0
    assert produced[EXAMPLE_GEN]["examples"][0]["metadata"]["window_spans"] == "1"
    assert produced[DRIFT_GATE]["drift"][0]["metadata"]["drift"] == "no previous span to compare with"
    assert training["warm_start"]["from_scratch"] == ["no blessed model yet"]


@pytest.mark.e2e
def test_the_next_run_of_the_same_spec_picks_up_the_new_span_and_resolves_from_metadata(two_days_on_kubeflow: dict) -> None:
    """Day 2: TFX's driver resolves the new span, ExampleGen reads the window (days 1-2), the drift
    gate compares day 2 with day 1, and the resolvers find day 1's blessed model in ML Metadata: the
    Trainer warm-starts from it and the Evaluator compares with it."""
    first, second = two_days_on_kubeflow[1], two_days_on_kubeflow[2]
    examples = second[EXAMPLE_GEN]["examples"][0]["metadata"]
    # "custom:span": TFX's name in KFP metadata for a custom property named like a typed one
    assert examples["custom:span"] == 2 and examples["window_spans"] == "1,2", examples
    drift = second[DRIFT_GATE]["drift"][0]["metadata"]
    assert (drift["custom:span"], drift["previous_span"], drift["drift"]) == (2, 1, "within every threshold"), drift
    first_model = first[TRAINER]["model"][0]
    (base,) = second[f"{WARM_START_RESOLVER}-model-resolver"]["model"]
    assert base["uri"] == first_model["uri"]
    (baseline,) = second[f"{BASELINE_RESOLVER}-model-resolver"]["model"]
    assert baseline["uri"] == first_model["uri"]
    with tf.io.gfile.GFile(f"{second[TRAINER]['model'][0]['uri']}/Format-Serving/assets.extra/embedpipe/training.json") as f:
        warm = json.load(f)["warm_start"]
    assert warm["warm"] and warm["base_model"] == f"{first_model['uri']}/Format-Serving", warm
    assert warm["tables"]["history"]["new"] > 0, "day 2 brought new items"
    pushed = [run["Pusher"]["pushed_model"][0]["metadata"] for run in (first, second)]
    assert pushed[1]["pushed"] == 1 and pushed[1]["pushed_version"] != pushed[0]["pushed_version"]


def test_dockerfile_builds_on_tfx_1_16_with_the_project_and_keras_2() -> None:
    lines = [line.strip() for line in (REPO / "kubeflow" / "Dockerfile").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM gcr.io/tfx-oss-public/tfx:1.16.0"
    text = "\n".join(lines)
    assert "TF_USE_LEGACY_KERAS=1" in text
    assert f"WORKDIR {IMAGE_REPO_ROOT}" in text
    assert "pip install --no-cache-dir -c constraints.txt -e ." in text
    # every top-level package setup.py installs (the list it gives find_packages), and the schemas
    include = re.search(r"include=\[(.*?)\]", (REPO / "setup.py").read_text(), re.S).group(1)
    packages = {name.strip().strip('"') for name in include.split(",")} - {""}
    top_level = {p for p in packages if "." not in p}
    assert {"models", "embedconfig", "serving"} <= top_level, top_level
    for package in sorted(top_level) + ["schema"]:
        assert f"COPY {package}/ {package}/" in text, f"kubeflow/Dockerfile does not copy {package}/, which setup.py installs"
