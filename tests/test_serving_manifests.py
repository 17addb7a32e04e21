"""The deployment manifests for real TF Serving, checked for structure and for agreeing with each other."""

from __future__ import annotations

from pathlib import Path

import yaml

from embedconfig.config import load_config

MANIFESTS = Path(__file__).resolve().parents[1] / "serving" / "manifests"
MODEL = load_config(Path(__file__).resolve().parents[1] / "configs" / "movielens.yaml").push.model_name


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def test_tf_serving_deployment_runs_the_image_matching_tf_2_16_on_the_pvc() -> None:
    deployment, service = _docs("tf-serving.yaml")
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "tensorflow/serving:2.16.1"
    args = dict(a.lstrip("-").split("=", 1) for a in container["args"])
    assert args["port"] == "8500" and args["rest_api_port"] == "8501" and args["model_name"] == MODEL
    mount = next(m for m in container["volumeMounts"] if m["name"] == "models")
    assert args["model_base_path"] == f"{mount['mountPath']}/{MODEL}"
    claim = next(v for v in pod["volumes"] if v["name"] == "models")["persistentVolumeClaim"]["claimName"]
    assert claim == _docs("models-pvc.yaml")[0]["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{MODEL}"
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == {8500, 8501}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_kserve_inference_service_reads_the_same_model_directory() -> None:
    (isvc,) = _docs("kserve-inferenceservice.yaml")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "tensorflow" and str(model["runtimeVersion"]) == "2.16.1"
    claim = _docs("models-pvc.yaml")[0]["metadata"]["name"]
    assert model["storageUri"] == f"pvc://{claim}/{MODEL}"


def test_the_pvc_can_be_shared_by_the_pusher_and_the_servers() -> None:
    (pvc,) = _docs("models-pvc.yaml")
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_monitor_cronjob_runs_a_valid_monitor_command_on_the_pipeline_image_without_retrying_a_verdict() -> None:
    from pipeline.cli import build_parser, cmd_monitor

    (cron,) = [d for d in yaml.safe_load_all((MANIFESTS.parents[1] / "kubeflow" / "monitor-cronjob.yaml").read_text()) if d]
    assert cron["apiVersion"] == "batch/v1" and cron["kind"] == "CronJob"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"  # exit 4 is an answer, not a fault
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"] == ["embedpipe"] and container["image"].endswith("/embedpipe:v1")
    args = build_parser().parse_args(container["args"])
    assert args.func is cmd_monitor and args.logs.startswith("gs://") and args.config.startswith("gs://")
