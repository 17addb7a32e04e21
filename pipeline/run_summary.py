"""Read what a local run produced back from ML Metadata: metrics, blessing and why, pushed version."""

from __future__ import annotations

import dataclasses
from typing import Any

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.utils import path_utils

from pipeline import pipeline_factory as nodes


@dataclasses.dataclass
class RunSummary:
    """What a person needs after a run."""

    pipeline_root: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    blessed: bool | None
    failures: list[str]
    infra_blessed: bool | None
    infra_reason: str
    pushed: bool
    pushed_path: str | None
    model_path: str | None
    cached_components: list[str]
    rejected_records: int | None = None  # data.on_bad_record: skip
    rejects_uri: str | None = None

    def render(self) -> str:
        """The summary as printed at the end of ``embedpipe run``."""
        lines = ["", "== embedpipe run summary =="]
        if self.metrics:
            lines.append("eval metrics (candidate):")
            for name in sorted(self.metrics):
                base = self.baseline_metrics.get(name)
                versus = f"   (baseline {base:.4f})" if base is not None else ""
                lines.append(f"  {name:<28} {self.metrics[name]:.4f}{versus}")
        if self.blessed is None:
            lines.append("blessed: unknown (the Evaluator did not run)")
        elif self.blessed:
            lines.append("blessed: yes (every threshold passed" + (", compared with the last blessed model)" if self.baseline_metrics else "; first model, no baseline yet)"))
        else:
            lines.append("blessed: NO")
            lines += [f"  - {f}" for f in self.failures]
        if self.infra_blessed is not None:
            lines.append(f"serving canary: {'passed' if self.infra_blessed else 'FAILED'} ({self.infra_reason})")
        lines.append(f"pushed: {self.pushed_path}" if self.pushed else "pushed: no (only models blessed by the Evaluator and the canary are pushed)")
        if self.model_path:
            lines.append(f"trained model: {self.model_path}")
        if self.rejected_records is not None:
            lines.append(f"rejected records: {self.rejected_records} (each with file, line and reason in {self.rejects_uri})")
        if self.cached_components:
            lines.append(f"reused from cache: {', '.join(self.cached_components)}")
        lines.append(f"artifacts: {self.pipeline_root}")
        return "\n".join(lines)


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def _latest_execution(store: metadata_store.MetadataStore, pipeline_name: str, node_id: str) -> metadata_store_pb2.Execution | None:
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return None
    executions = store.get_executions_by_context(context.id)
    return max(executions, key=lambda e: e.id) if executions else None


def _finished(execution: metadata_store_pb2.Execution | None) -> bool:
    return execution is not None and execution.last_known_state in (
        metadata_store_pb2.Execution.COMPLETE,
        metadata_store_pb2.Execution.CACHED,
    )


def _outputs(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    out: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for e in events:
        key = e.path.steps[0].key if e.path.steps else ""
        out.setdefault(key, []).append(artifacts[e.artifact_id])
    return out


def _custom(artifact: metadata_store_pb2.Artifact, key: str) -> Any:
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def _metrics_of(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float]]:
    candidate: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue  # overall slice only
        for kv in per_slice.metric_keys_and_values:
            if kv.key.is_diff or not kv.value.HasField("double_value"):
                continue
            target = baseline if kv.key.model_name == "baseline" else candidate
            target[kv.key.name] = kv.value.double_value.value
    return candidate, baseline


def _describe_failure(failure: Any) -> str:
    name = failure.metric_key.name
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        allowed = threshold.change_threshold.absolute.value
        return f"{name} changed by {value:+.4f} against the last blessed model; allowed change {allowed:+.4f}"
    bounds = threshold.value_threshold
    parts = []
    if bounds.HasField("lower_bound"):
        parts.append(f">= {bounds.lower_bound.value:g}")
    if bounds.HasField("upper_bound"):
        parts.append(f"<= {bounds.upper_bound.value:g}")
    return f"{name} is {value:.4f}; required {' and '.join(parts)}" + (f" ({failure.message})" if failure.message else "")


def _failures_of(evaluation_uri: str) -> list[str]:
    result = tfma.load_validation_result(evaluation_uri)
    return [_describe_failure(f) for per_slice in result.metric_validations_per_slice for f in per_slice.failures]


def summarize_run(pipeline_name: str, pipeline_root: str, metadata_path: str) -> RunSummary:
    """Summarize the latest execution of each node of ``pipeline_name``."""
    store = _store(metadata_path)
    cached = []
    for node_id in (nodes.EXAMPLE_GEN, nodes.STATISTICS_GEN, nodes.TRANSFORM, nodes.TRAINER, nodes.EVALUATOR,
                    nodes.SERVING_CANARY, nodes.PUSHER):
        execution = _latest_execution(store, pipeline_name, node_id)
        if execution is not None and execution.last_known_state == metadata_store_pb2.Execution.CACHED:
            cached.append(node_id)

    metrics: dict[str, float] = {}
    baseline: dict[str, float] = {}
    blessed, failures = None, []
    evaluator = _latest_execution(store, pipeline_name, nodes.EVALUATOR)
    if _finished(evaluator):
        outs = _outputs(store, evaluator)
        if outs.get("evaluation"):
            metrics, baseline = _metrics_of(outs["evaluation"][0].uri)
            failures = _failures_of(outs["evaluation"][0].uri)
        if outs.get("blessing"):
            blessed = bool(_custom(outs["blessing"][0], "blessed"))

    infra_blessed, infra_reason = None, ""
    canary = _latest_execution(store, pipeline_name, nodes.SERVING_CANARY)
    if _finished(canary):
        outs = _outputs(store, canary)
        if outs.get("blessing"):
            infra_blessed = bool(_custom(outs["blessing"][0], "blessed"))
            infra_reason = str(_custom(outs["blessing"][0], "reason") or "")

    pushed, pushed_path = False, None
    pusher = _latest_execution(store, pipeline_name, nodes.PUSHER)
    if _finished(pusher):
        outs = _outputs(store, pusher)
        if outs.get("pushed_model"):
            pushed_artifact = outs["pushed_model"][0]
            pushed = bool(_custom(pushed_artifact, "pushed"))
            pushed_path = _custom(pushed_artifact, "pushed_destination")

    model_path = None
    trainer = _latest_execution(store, pipeline_name, nodes.TRAINER)
    if trainer is not None:
        models = _outputs(store, trainer).get("model")
        if models:
            model_path = path_utils.serving_model_dir(models[0].uri)
    rejected, rejects_uri = None, None
    example_gen = _latest_execution(store, pipeline_name, nodes.EXAMPLE_GEN)
    if example_gen is not None:
        examples = _outputs(store, example_gen).get("examples")
        if examples and _custom(examples[0], "rejects_uri"):
            rejected, rejects_uri = int(_custom(examples[0], "rejected_records") or 0), str(_custom(examples[0], "rejects_uri"))
    return RunSummary(pipeline_root, metrics, baseline, blessed, failures, infra_blessed, infra_reason, pushed, pushed_path, model_path,
                      cached, rejected, rejects_uri)
