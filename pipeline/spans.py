"""Spans: which days of data are on disk, which the pipeline has ingested, and what a run trains on.

TFX's ExampleGen ingests one span per run: the newest matching ``data.path`` (its driver resolves
``{SPAN}`` or ``{YYYY}-{MM}-{DD}`` and records the span on the Examples artifact). A pipeline that
finds several spans it has not ingested (its first run on a backlog, or a day it missed) ingests
the older ones first, one ExampleGen run each with a static range (``local_runner``), so that the
window's resolver finds every span in ML Metadata.
"""

from __future__ import annotations

import os
import re

from ml_metadata.proto import metadata_store_pb2
from tfx.components.example_gen import utils as example_gen_utils

from components.example_gen import input_patterns, matching_files
from components.lineage import read_only_store, recorded_span
from embedconfig.config import DataConfig


def _span_regex(pattern: str) -> re.Pattern[str]:
    """A regex for the files of ``pattern`` whose groups are the span's placeholders."""
    regex, position = "", 0
    for match in re.finditer(r"\{(SPAN|YYYY|MM|DD|VERSION)(:[^}]*)?\}|\*|\?", pattern):
        regex += re.escape(pattern[position:match.start()])
        token = match.group(0)
        if token == "*":
            regex += "[^/]*"
        elif token == "?":
            regex += "[^/]"
        else:
            regex += f"(?P<{match.group(1)}>\\d+)"
        position = match.end()
    return re.compile(regex + re.escape(pattern[position:]) + "$")


def span_of(groups: dict[str, str]) -> int:
    """The span number a file's placeholders give (a date is TFX's day number)."""
    if "SPAN" in groups:
        return int(groups["SPAN"])
    return example_gen_utils.date_to_span_number(int(groups["YYYY"]), int(groups["MM"]), int(groups["DD"]))


def spans_on_disk(data: DataConfig) -> list[int]:
    """The spans ``data.path`` finds, in any file system, sorted; every split must have files of a span."""
    base, patterns = input_patterns(data)
    per_split = []
    for pattern in patterns.values():
        regex = _span_regex(os.path.join(base, pattern))
        found = set()
        for path in matching_files(base, pattern):
            match = regex.match(path)
            if match:
                found.add(span_of(match.groupdict()))
        per_split.append(found)
    return sorted(set.intersection(*per_split)) if per_split else []


def spans_ingested(metadata_path: str, pipeline_name: str, node_id: str) -> set[int]:
    """The spans of every live Examples artifact ExampleGen (``node_id``) produced in this pipeline."""
    if not os.path.exists(metadata_path):  # the runner's local SQLite store, before its first run
        return set()
    store = read_only_store(metadata_path)
    context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if context is None:
        return set()
    spans = set()
    for artifact in store.get_artifacts_by_context(context.id):
        span = recorded_span(artifact)
        if artifact.type_id == store.get_artifact_type("Examples").id and artifact.state == metadata_store_pb2.Artifact.LIVE \
                and span is not None:
            spans.add(span)
    return spans


def spans_to_backfill(data: DataConfig, metadata_path: str, pipeline_name: str, node_id: str) -> list[int]:
    """The spans on disk the pipeline has not ingested, but the newest (the run itself ingests that one)."""
    on_disk = spans_on_disk(data)
    if not on_disk:
        return []
    done = spans_ingested(metadata_path, pipeline_name, node_id)
    return [s for s in on_disk[:-1] if s not in done]
