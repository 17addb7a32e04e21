"""Run the pipeline locally: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner (from config).

Prints one line as each component starts and finishes (with its wall time), then the run summary.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable, TextIO

from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.metadata import sqlite_metadata_connection_config
from tfx.orchestration.pipeline import Pipeline

import patches
from embedconfig.beam_profiles import PORTABLE_RUNNERS
from embedconfig.config import PipelineConfig
from pipeline.beam_mode import BeamChoice, beam_choice
from pipeline.pipeline_factory import EXAMPLE_GEN, create_pipeline, ingest_span_pipeline
from pipeline.run_summary import RunSummary, summarize_run
from pipeline.spans import spans_to_backfill


class ComponentProgress(logging.Handler):
    """Turns LocalDagRunner's 'Component X is running/finished.' log records into progress lines."""

    def __init__(self, total: int, out: TextIO, forward_errors: bool):
        super().__init__(level=logging.INFO)
        self.total, self.out, self.forward_errors = total, out, forward_errors
        self.started: dict[str, float] = {}
        self.durations: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and self.forward_errors:
            print(self.format(record), file=sys.stderr, flush=True)
            return
        if record.msg not in ("Component %s is running.", "Component %s is finished."):
            return
        node = str(record.args[0])
        if record.msg.endswith("running."):
            self.started[node] = time.monotonic()
            print(f"[{len(self.started)}/{self.total}] {node} ...", file=self.out, flush=True)
        else:
            self.durations[node] = time.monotonic() - self.started.get(node, time.monotonic())
            print(f"[{len(self.started)}/{self.total}] {node} done in {self.durations[node]:.1f}s", file=self.out, flush=True)


def run_locally(
    config: PipelineConfig,
    out: TextIO = sys.stdout,
    on_durations: Callable[[dict[str, float]], None] | None = None,
    verbose: bool = False,
) -> RunSummary:
    """Run the whole pipeline; return (and print) its summary. Raises if a component fails.

    Quiet by default: TFX's INFO/WARNING logs are kept from the console (errors still show);
    ``verbose`` lets every log record through as usual.
    """
    for path in (config.pipeline.root, os.path.dirname(config.pipeline.metadata_path)):
        if "://" not in path:
            os.makedirs(path, exist_ok=True)
    beam = beam_choice(config)  # lists the input files once: printed below and given to the pipeline
    metadata = sqlite_metadata_connection_config(config.pipeline.metadata_path)
    patches.exclude_tf_keras_from_autograph()  # TFMA loads the model with tf_keras in this process: 48.7 -> 32.5 s
    print(f"embedpipe: running '{config.pipeline.name}' from {config.source} on data {config.data.path}", file=out, flush=True)
    print(f"embedpipe: Beam {' '.join(beam.args)} ({beam.reason})", file=out, flush=True)
    backfilled: list[int] | None = [] if config.data.has_spans else None
    if backfilled is not None:
        for span in spans_to_backfill(config.data, config.pipeline.metadata_path, config.pipeline.name, EXAMPLE_GEN):
            print(f"embedpipe: ingesting span {span} first (on disk, not ingested yet)", file=out, flush=True)
            _run_dag(ingest_span_pipeline(config, span, metadata, beam), beam, out, verbose)
            backfilled.append(span)
    _run_dag(create_pipeline(config, metadata, beam=beam), beam, out, verbose, on_durations)
    summary = summarize_run(config.pipeline.name, config.pipeline.root, config.pipeline.metadata_path, backfilled=backfilled)
    print(summary.render(), file=out, flush=True)
    return summary


def _run_dag(pipeline: Pipeline, beam: BeamChoice, out: TextIO, verbose: bool,
             on_durations: Callable[[dict[str, float]], None] | None = None) -> None:
    """One LocalDagRunner run, printing a line as each component starts and ends."""
    progress = ComponentProgress(total=len(pipeline.components), out=out, forward_errors=not verbose)
    workers_have_tfx = beam.beam.runner == "direct" or beam.beam.runner in PORTABLE_RUNNERS  # see the patch
    with patches.absl_level_pinned(logging.INFO) as absl_logger:  # the progress lines come from absl's records
        absl_logger.addHandler(progress)
        previous_propagate, absl_logger.propagate = absl_logger.propagate, verbose
        try:
            with patches.no_tfx_sdist_for_beam_workers(workers_have_tfx):
                LocalDagRunner().run(pipeline)
        finally:
            absl_logger.removeHandler(progress)
            absl_logger.propagate = previous_propagate
            if on_durations is not None:
                on_durations(dict(progress.durations))
