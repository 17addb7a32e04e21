"""DirectRunner's mode when the config leaves it open (``direct_running_mode: auto``, the default).

``multi_processing`` starts one worker per core for every Beam job, and each worker imports
TensorFlow first. That is a fixed cost per job, which only pays off once the rows outweigh it: on
the built-in example's data ``in_memory`` was faster at 100K rows and ``multi_processing`` at 1M.
``MULTI_PROCESSING_FROM_BYTES`` sits just above where the two modes cross, where either costs about
the same (bench/RESULTS.md, "DirectRunner's mode, chosen by size"). Bytes rather than rows, because
parsing and transforming cost grows with a row's size, and the size is known without reading the
data.

A compiled (Kubeflow) pipeline keeps ``in_memory``: its data is read in the pods, not where it is
compiled, and a pod's cores are set by its resources. Set ``beam.options.direct_running_mode``
there, as anywhere, to choose.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import tensorflow as tf

from components.example_gen import input_patterns, matching_files
from embedconfig.beam_profiles import AUTO
from embedconfig.config import BeamConfig, DataConfig, PipelineConfig

MULTI_PROCESSING_FROM_BYTES = 128 * 2**20


@dataclass(frozen=True)
class BeamChoice:
    """The Beam config the pipeline runs with, ``auto`` settled, and why (printed at the start of a run)."""

    beam: BeamConfig
    reason: str

    @property
    def args(self) -> tuple[str, ...]:
        """The ``beam_pipeline_args`` flags: the only place the typed options become strings."""
        return self.beam.pipeline_args()


def input_bytes(data: DataConfig) -> int:
    """Total size of the files the config's data section names (every split), in any file system."""
    base, patterns = input_patterns(data)
    files = {f for pattern in patterns.values() for f in matching_files(base, pattern)}
    return sum(tf.io.gfile.stat(f).length for f in files)


def leaves_mode_open(beam: BeamConfig) -> bool:
    """``direct_running_mode: auto``, and no ``--direct_*`` flag in ``beam.args`` that replaces the options."""
    explicit = any(a.startswith("--direct_") for a in beam.args)
    return beam.runner == "direct" and beam.options.get("direct_running_mode") == AUTO and not explicit


def direct_mode(beam: BeamConfig, size: int | None, cores: int) -> BeamChoice:
    """Settle ``direct_running_mode: auto`` for ``size`` bytes of input (None: unknown) on ``cores``
    cores; any other Beam config is returned as it is."""
    if not leaves_mode_open(beam):
        return BeamChoice(beam, "as configured")
    parallel = size is not None and size >= MULTI_PROCESSING_FROM_BYTES and cores > 1
    mode = "multi_processing" if parallel else "in_memory"
    workers = beam.options.get("direct_num_workers") or (cores if parallel else 1)
    if size is None:
        why = "input size unknown where the pipeline is compiled"
    else:
        why = f"{size / 2**20:,.0f} MB of input, {'>=' if parallel else '<'} {MULTI_PROCESSING_FROM_BYTES / 2**20:,.0f} MB"
        if size >= MULTI_PROCESSING_FROM_BYTES and not parallel:
            why += ", but one core"
    return BeamChoice(beam.with_options(direct_running_mode=mode, direct_num_workers=workers), f"auto: {mode} ({why})")


def beam_choice(config: PipelineConfig, compiled: bool = False) -> BeamChoice:
    """The Beam config for ``config``: ``auto`` settled from the input's size (locally) or
    ``in_memory`` (compiled)."""
    size = input_bytes(config.data) if leaves_mode_open(config.beam) and not compiled else None  # read only if needed
    return direct_mode(config.beam, size, os.cpu_count() or 1)
