"""DirectRunner's mode when the config leaves it open (``direct_running_mode: auto``, the default).

``multi_processing`` starts one worker per core for every Beam job, and each worker imports
TensorFlow first. That is a fixed cost per job, which only pays off once the rows outweigh it.
bench/RESULTS.md ("Scale") measured the built-in example's data. At 100K rows (21 MB of JSONL) the
Beam components took 112 s in ``multi_processing`` and 69 s in ``in_memory``. At 1M rows (213 MB)
they took 329 s against 405 s in one session and 278 s against 456 s in another. Interpolated
linearly, the two modes cross between 280K and 425K rows, which is 60-90 MB of input.
``MULTI_PROCESSING_FROM_BYTES`` sits above that range: just past the crossover either mode costs
about the same. Bytes rather than rows, because parsing and transforming cost grows with a row's
size, and the size is known without reading the data.

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
from embedconfig.config import DataConfig, PipelineConfig

MULTI_PROCESSING_FROM_BYTES = 128 * 2**20
_AUTO_FLAG = f"--direct_running_mode={AUTO}"


@dataclass(frozen=True)
class BeamChoice:
    """The Beam args the pipeline runs with, and why (printed at the start of a run)."""

    args: tuple[str, ...]
    reason: str


def input_bytes(data: DataConfig) -> int:
    """Total size of the files the config's data section names (every split), in any file system."""
    base, patterns = input_patterns(data)
    files = {f for pattern in patterns.values() for f in matching_files(base, pattern)}
    return sum(tf.io.gfile.stat(f).length for f in files)


def direct_mode(args: tuple[str, ...], size: int | None, cores: int) -> BeamChoice:
    """Settle ``--direct_running_mode=auto`` in ``args`` for ``size`` bytes of input (None:
    unknown) on ``cores`` cores; other args are returned as they are."""
    if _AUTO_FLAG not in args:
        return BeamChoice(tuple(args), "as configured")
    parallel = size is not None and size >= MULTI_PROCESSING_FROM_BYTES and cores > 1
    mode = "multi_processing" if parallel else "in_memory"
    chosen = [a for a in args if a != _AUTO_FLAG] + [f"--direct_running_mode={mode}"]
    if not any(a.startswith("--direct_num_workers=") for a in chosen):
        chosen.append(f"--direct_num_workers={cores if parallel else 1}")
    if size is None:
        why = "input size unknown where the pipeline is compiled"
    else:
        why = f"{size / 2**20:,.0f} MB of input, {'>=' if parallel else '<'} {MULTI_PROCESSING_FROM_BYTES / 2**20:,.0f} MB"
        if size >= MULTI_PROCESSING_FROM_BYTES and not parallel:
            why += ", but one core"
    return BeamChoice(tuple(chosen), f"auto: {mode} ({why})")


def beam_choice(config: PipelineConfig, compiled: bool = False) -> BeamChoice:
    """The Beam args for ``config``: ``auto`` settled from the input's size (locally) or
    ``in_memory`` (compiled)."""
    size = input_bytes(config.data) if _AUTO_FLAG in config.beam_args and not compiled else None  # read only if needed
    return direct_mode(config.beam_args, size, os.cpu_count() or 1)
