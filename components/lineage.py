"""Reading ML Metadata: a read-only store, the span ExampleGen recorded, and an artifact's lineage.

One place for what the drift gate's and the analyzer cache's resolvers, the span backfill and the
run summary all read. TFX 1.16's ExampleGen driver records an Examples artifact's span as a custom
property (the typed ``span`` property stays 0, and StatisticsGen copies that 0), so a span is read
from the custom property, and other artifacts' spans through the Examples they were made from.
"""

from __future__ import annotations

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from tfx.components.example_gen.utils import SPAN_PROPERTY_NAME as SPAN


def read_only_store(metadata_path: str) -> mlmd.MetadataStore:
    """The local SQLite metadata store, opened read-only."""
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return mlmd.MetadataStore(config)


def recorded_span(artifact: metadata_store_pb2.Artifact) -> int | None:
    """The span ExampleGen's driver recorded on an Examples artifact (int or, in older runs, string); None if none."""
    value = artifact.custom_properties.get(SPAN)
    if value is None:
        return None
    return int(value.int_value if value.HasField("int_value") else value.string_value)


def examples_read_by_producer(store: mlmd.MetadataStore, artifact_id: int) -> list[metadata_store_pb2.Artifact]:
    """The Examples artifacts that the execution which wrote ``artifact_id`` read."""
    producers = [e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == metadata_store_pb2.Event.OUTPUT]
    inputs = [e.artifact_id for e in store.get_events_by_execution_ids(producers) if e.type == metadata_store_pb2.Event.INPUT]
    examples_type = store.get_artifact_type("Examples").id
    return [a for a in store.get_artifacts_by_id(inputs) if a.type_id == examples_type]


def pushed_version_of(store: mlmd.MetadataStore, model_id: int, hops: int = 3) -> str | None:
    """The version under which a Model artifact (or a copy made from it, such as the serving canary's
    warmed model) was pushed, following executions downstream for at most ``hops``; None if never."""
    pushed_type = store.get_artifact_type("PushedModel").id
    frontier = {model_id}
    for _ in range(hops):
        consumers = {e.execution_id for e in store.get_events_by_artifact_ids(list(frontier)) if e.type == metadata_store_pb2.Event.INPUT}
        if not consumers:
            return None
        produced = [e.artifact_id for e in store.get_events_by_execution_ids(list(consumers)) if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = store.get_artifacts_by_id(produced)
        for a in sorted(artifacts, key=lambda a: a.id):
            pushed = a.custom_properties.get("pushed")
            if a.type_id == pushed_type and pushed is not None and pushed.int_value == 1 and "pushed_version" in a.custom_properties:
                return a.custom_properties["pushed_version"].string_value
        frontier = {a.id for a in artifacts if a.type_id != pushed_type}
        if not frontier:
            return None
    return None
