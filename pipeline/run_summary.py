"""Read what a local run produced back from ML Metadata: metrics, blessing and why, pushed version,
and the best and worst of ``evaluation.slices`` by the gated metric."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import tensorflow as tf
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.writers import eval_config_writer
from tfx.utils import path_utils

from components.lineage import pushed_version_of, read_only_store, recorded_span
from models.warm_start import MODEL_INFO_DIR
from pipeline import pipeline_factory as nodes

SLICES_SHOWN = 3  # slices listed at each end of the ranking
BASELINE = "baseline"  # TFX's name for the baseline model in TFMA's metric keys


@dataclasses.dataclass(frozen=True)
class SliceMetric:
    """One slice of the eval split: its name (``feature=value, ...``), gated metric and size."""

    name: str
    value: float
    examples: int


@dataclasses.dataclass
class SliceRanking:
    """The slices of ``evaluation.slices`` ranked by ``metric``, highest first."""

    metric: str
    slices: list[SliceMetric]
    one_class: int  # slices left out: one label value only, where AUC is undefined

    def render(self) -> list[str]:
        """Lines: the top and bottom ``SLICES_SHOWN`` slices, each with its example count."""
        left_out = f"; {self.one_class} with one class only left out" if self.one_class else ""
        lines = [f"slices by {self.metric} ({len(self.slices)} slices{left_out}):"]
        shown = self.slices
        if len(shown) > 2 * SLICES_SHOWN:
            shown = shown[:SLICES_SHOWN] + [None] + shown[-SLICES_SHOWN:]
        for s in shown:
            lines.append("  ..." if s is None else f"  {s.name:<40} {s.value:.4f}   ({s.examples} examples)")
        return lines


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
    slices: SliceRanking | None = None  # evaluation.slices, when configured
    ingested_spans: list[int] = dataclasses.field(default_factory=list)  # with spans: ingested by this run
    trained_spans: list[int] = dataclasses.field(default_factory=list)  # with spans: what the Trainer read
    drift: str | None = None  # with spans: the DriftGate's verdict on the newest span against the previous one
    warm_start: str | None = None  # training.warm_start: what the Trainer started from, or why from scratch

    def render(self) -> str:
        """The summary as printed at the end of ``embedpipe run``."""
        lines = ["", "== embedpipe run summary =="]
        if self.metrics:
            lines.append("eval metrics (candidate):")
            for name in sorted(self.metrics):
                base = self.baseline_metrics.get(name)
                versus = f"   (baseline {base:.4f})" if base is not None else ""
                lines.append(f"  {name:<28} {self.metrics[name]:.4f}{versus}")
        if self.slices is not None:
            lines += self.slices.render()
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
        if self.ingested_spans or self.trained_spans:
            ingested = ", ".join(map(str, self.ingested_spans)) or "none new (the newest span was ingested before)"
            lines.append(f"spans: ingested {ingested}; trained on {_span_list(self.trained_spans)}")
        if self.drift:
            lines.append(f"drift: {self.drift}")
        if self.warm_start:
            lines.append(f"warm start: {self.warm_start}")
        if self.rejected_records is not None:
            lines.append(f"rejected records: {self.rejected_records} (each with file, line and reason in {self.rejects_uri})")
        if self.cached_components:
            lines.append(f"reused from cache: {', '.join(self.cached_components)}")
        lines.append(f"artifacts: {self.pipeline_root}")
        return "\n".join(lines)


def _span_list(spans: list[int]) -> str:
    """``1-3`` for consecutive spans, else ``1, 3``."""
    if len(spans) > 2 and spans == list(range(spans[0], spans[-1] + 1)):
        return f"{spans[0]}-{spans[-1]} ({len(spans)} spans)"
    return ", ".join(map(str, spans)) or "none"


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


def _inputs(store: metadata_store.MetadataStore, execution: metadata_store_pb2.Execution) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution.id]) if e.type == metadata_store_pb2.Event.INPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    found: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for e in events:
        found.setdefault(e.path.steps[0].key if e.path.steps else "", []).append(artifacts[e.artifact_id])
    return found


def _spans(artifacts: list[metadata_store_pb2.Artifact]) -> list[int]:
    return sorted({recorded_span(a) for a in artifacts if recorded_span(a) is not None})


def _custom(artifact: metadata_store_pb2.Artifact, key: str) -> Any:
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    return getattr(value, value.WhichOneof("value"))


def _values(per_slice: Any, of_baseline: bool = False) -> dict[str, float]:
    """One slice's scalar metrics of the candidate, or of the baseline."""
    values = {}
    for kv in per_slice.metric_keys_and_values:
        if kv.key.is_diff or not kv.value.HasField("double_value"):
            continue
        if (kv.key.model_name == BASELINE) == of_baseline:
            values[kv.key.name] = kv.value.double_value.value
    return values


def _slice_name(slice_key: Any) -> str:
    """``feature=value, ...`` of a serialized slice key."""
    parts = []
    for key in slice_key.single_slice_keys:
        value = getattr(key, key.WhichOneof("kind"))
        parts.append(f"{key.column}={value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts)


def _gated_metric(evaluation_uri: str) -> str | None:
    """The metric the Evaluator's value thresholds gate on, as TFMA names it ("auc"), read from the
    EvalConfig TFMA stored with the evaluation (a Kubeflow run may have set it at run time)."""
    eval_config = eval_config_writer.load_eval_run(evaluation_uri)[0]
    if eval_config is None:
        return None
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config=eval_config)
    names = [key.name for key in thresholds if not key.is_diff]
    return "auc" if "auc" in names else (names[0] if names else None)


def rank_slices(per_slice_values: dict[str, dict[str, float]], metric: str) -> SliceRanking:
    """Rank slices (name -> candidate metrics) by ``metric``, highest first; slices with one class
    only (mean label 0 or 1) or without the metric are left out of the ranking."""
    ranked, one_class = [], 0
    for name, values in per_slice_values.items():
        if values.get("mean_label") in (0.0, 1.0):
            one_class += 1
        elif metric in values and not math.isnan(values[metric]):
            ranked.append(SliceMetric(name, values[metric], int(values.get("example_count", 0))))
    ranked.sort(key=lambda s: (-s.value, s.name))
    return SliceRanking(metric, ranked, one_class)


def _metrics_of(evaluation_uri: str) -> tuple[dict[str, float], dict[str, float], SliceRanking | None]:
    """Overall candidate and baseline metrics, and the candidate's slices ranked by the gated metric."""
    candidate: dict[str, float] = {}
    baseline: dict[str, float] = {}
    per_slice_values: dict[str, dict[str, float]] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            per_slice_values[_slice_name(per_slice.slice_key)] = _values(per_slice)
        elif not per_slice.HasField("cross_slice_key"):  # the overall slice
            candidate, baseline = _values(per_slice), _values(per_slice, of_baseline=True)
    metric = _gated_metric(evaluation_uri) if per_slice_values else None
    return candidate, baseline, rank_slices(per_slice_values, metric) if metric else None


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


def _warm_start_of(store: metadata_store.MetadataStore, trainer: metadata_store_pb2.Execution, model_path: str) -> str | None:
    """The Trainer's warm start in a line: the base model (and its pushed version) and the rows kept per
    table, or why it trained from scratch; None when training.warm_start was off."""
    training_json = f"{model_path}/{MODEL_INFO_DIR}/training.json"
    if not tf.io.gfile.exists(training_json):
        return None
    with tf.io.gfile.GFile(training_json) as f:
        record = json.load(f).get("warm_start")
    if record is None:
        return None
    if not record["warm"]:
        return "no, trained from scratch: " + "; ".join(record["from_scratch"])
    base = _inputs(store, trainer).get("base_model", [])
    version = pushed_version_of(store, base[0].id) if base else None
    source = f"the model pushed as version {version}" if version else "the last blessed model (not pushed)"
    tables = ", ".join(f"{owner} {t['kept']} kept, {t['new']} new" for owner, t in sorted(record["tables"].items()))
    return f"from {source} ({record['base_model']}); embedding rows by token: {tables}"


def summarize_run(pipeline_name: str, pipeline_root: str, metadata_path: str, backfilled: list[int] | None = None) -> RunSummary:
    """Summarize the latest execution of each node of ``pipeline_name``. ``backfilled``: with spans
    in data.path, the spans the runner ingested before the run (pipeline/spans.py); None: the
    pipeline names no spans (TFX still records span 0 on every Examples artifact)."""
    store = read_only_store(metadata_path)
    cached = []
    for node_id in (nodes.EXAMPLE_GEN, nodes.STATISTICS_GEN, nodes.TRANSFORM, nodes.TRAINER, nodes.EVALUATOR,
                    nodes.SERVING_CANARY, nodes.PUSHER):
        execution = _latest_execution(store, pipeline_name, node_id)
        if execution is not None and execution.last_known_state == metadata_store_pb2.Execution.CACHED:
            cached.append(node_id)

    metrics: dict[str, float] = {}
    baseline: dict[str, float] = {}
    slices: SliceRanking | None = None
    blessed, failures = None, []
    evaluator = _latest_execution(store, pipeline_name, nodes.EVALUATOR)
    if _finished(evaluator):
        outs = _outputs(store, evaluator)
        if outs.get("evaluation"):
            metrics, baseline, slices = _metrics_of(outs["evaluation"][0].uri)
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
    warm_start = _warm_start_of(store, trainer, model_path) if trainer is not None and model_path else None
    trained_spans = _spans(_inputs(store, trainer).get("examples", [])) if trainer is not None and backfilled is not None else []
    rejected, rejects_uri = None, None
    ingested = list(backfilled or [])
    example_gen = _latest_execution(store, pipeline_name, nodes.EXAMPLE_GEN)
    if example_gen is not None:
        examples = _outputs(store, example_gen).get("examples")
        if examples and _custom(examples[0], "rejects_uri"):
            rejected, rejects_uri = int(_custom(examples[0], "rejected_records") or 0), str(_custom(examples[0], "rejects_uri"))
        if examples and backfilled is not None and example_gen.last_known_state == metadata_store_pb2.Execution.COMPLETE:
            ingested += _spans(examples)
    drift = None
    gate = _latest_execution(store, pipeline_name, nodes.DRIFT_GATE) if backfilled is not None else None
    if _finished(gate) and _outputs(store, gate).get("drift"):
        report = _outputs(store, gate)["drift"][0]
        previous = _custom(report, "previous_span")
        drift = (f"span {_custom(report, 'span')} against span {previous}: " if previous is not None else "") + str(_custom(report, "drift"))
    return RunSummary(pipeline_root, metrics, baseline, blessed, failures, infra_blessed, infra_reason, pushed, pushed_path, model_path,
                      cached, rejected, rejects_uri, slices, ingested_spans=sorted(set(ingested)),
                      trained_spans=trained_spans, drift=drift, warm_start=warm_start)
