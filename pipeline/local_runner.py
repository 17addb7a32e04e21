"""Run the pipeline locally: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner (from config).

Prints one line as each component starts and finishes (with its wall time), then the run summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Callable, Iterator, TextIO

from tfx.orchestration.local.local_dag_runner import LocalDagRunner
from tfx.orchestration.metadata import sqlite_metadata_connection_config

from embedconfig.beam_profiles import PORTABLE_RUNNERS
from embedconfig.config import BeamConfig, PipelineConfig
from models.autograph_rules import exclude_tf_keras_from_autograph
from pipeline.beam_mode import beam_choice
from pipeline.pipeline_factory import create_pipeline
from pipeline.run_summary import RunSummary, summarize_run


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


@contextlib.contextmanager
def no_tfx_sdist_for_direct_beam(beam: BeamConfig) -> Iterator[None]:
    """Keep TFX from packaging itself for Beam workers that already have it (DirectRunner, and the
    portable runner, whose workers are the project's SDK harness image or worker pool).

    Every Beam-based TFX executor, unless its Beam args name a dependency flag, builds an sdist of
    the installed TFX for remote workers (``dependency_utils.make_beam_dependency_flags``): it
    copies site-packages/tfx (48 MB) into a new temp dir it never removes and runs setup.py,
    1.25 s measured here, once per Beam component per run. DirectRunner workers run in this
    process or in subprocesses of this interpreter, which have TFX already; so do the portable
    runner's (embedconfig/beam_profiles.py requires the project's image or worker pool; with a
    pool, TFX's sdist also left a 49 MB temp dir per Beam job). Dataflow keeps TFX's behaviour.
    """
    from tfx.utils import dependency_utils

    direct = beam.runner == "direct" or beam.runner in PORTABLE_RUNNERS
    original = dependency_utils.make_beam_dependency_flags
    if direct:
        dependency_utils.make_beam_dependency_flags = lambda args: list(args)
    try:
        yield
    finally:
        dependency_utils.make_beam_dependency_flags = original


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
    pipeline = create_pipeline(
        config, sqlite_metadata_connection_config(config.pipeline.metadata_path), beam=beam
    )
    progress = ComponentProgress(total=len(pipeline.components), out=out, forward_errors=not verbose)
    exclude_tf_keras_from_autograph()  # TFMA loads the model with tf_keras in this process: 48.7 -> 32.5 s
    absl_logger = logging.getLogger("absl")
    absl_logger.addHandler(progress)
    previous_level, previous_propagate = absl_logger.level, absl_logger.propagate
    absl_logger.setLevel(logging.INFO)
    # TFX's Beam executors re-parse absl flags (sys.argv + beam args) when they start, which resets
    # this logger to WARNING mid-run and would silence the progress lines: pin it while we run.
    absl_logger.setLevel = lambda level: None  # type: ignore[method-assign]
    absl_logger.propagate = verbose
    print(f"embedpipe: running '{config.pipeline.name}' from {config.source} on data {config.data.path}", file=out, flush=True)
    print(f"embedpipe: Beam {' '.join(beam.args)} ({beam.reason})", file=out, flush=True)
    try:
        with no_tfx_sdist_for_direct_beam(beam.beam):
            LocalDagRunner().run(pipeline)
    finally:
        absl_logger.removeHandler(progress)
        del absl_logger.setLevel  # back to logging.Logger.setLevel
        absl_logger.setLevel(previous_level)
        absl_logger.propagate = previous_propagate
        if on_durations is not None:
            on_durations(dict(progress.durations))
    summary = summarize_run(config.pipeline.name, config.pipeline.root, config.pipeline.metadata_path)
    print(summary.render(), file=out, flush=True)
    return summary
