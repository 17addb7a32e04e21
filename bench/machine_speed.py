"""How fast this VM is right now: two fixed workloads, timed, printed beside every wall-time table.

    .venv/bin/python bench/machine_speed.py

Why: the same cold MovieLens run at the same commit took about three times as long one evening as
that afternoon: the VM's speed, not the code, moved it
(bench/RESULTS.md, "The machine, and how to compare wall times on it").
Without a reading of the machine's speed taken beside it, a wall time cannot be compared with one
taken on another day. The two readings mirror where a cold run spends its time:
- ``python_loop_s``: a pure-Python loop of 10 million additions (Beam's bundle processing, TFT's and
  TFMA's pipeline construction and tracing are Python-bound: py-spy; Transform's share in
  bench/RESULTS.md, "What made the cold run faster (measured side by side)");
- ``tf_step_us``: one step of a small GRU-like recurrence in a ``tf.while_loop`` inside a
  ``tf.function`` (tiny ops, one after another: the critical path of the Trainer's steps).
Each is the best of three, so a moment of contention does not count. Lower is faster.
A rough guide, not a correction factor: like readings have gone with cold runs of quite different
lengths, and readings move from hour to hour
(bench/RESULTS.md, "The machine, and how to compare wall times on it").
Compare code with ``--compare`` runs in one invocation, not with a reading.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

PYTHON_LOOP_ADDS = 10_000_000
TF_LOOP_STEPS = 2_000


def python_loop_seconds() -> float:
    """Seconds for ``PYTHON_LOOP_ADDS`` additions in a pure-Python loop (best of three)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(PYTHON_LOOP_ADDS):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def tf_step_microseconds() -> float:
    """Microseconds per step of a GRU-like recurrence (batch 256, 32 units) run in a tf.while_loop (best of three)."""
    import tensorflow as tf

    kernel = tf.random.stateless_normal([32, 96], seed=[0, 1]) * 0.1

    @tf.function
    def recurrence(h: tf.Tensor) -> tf.Tensor:
        def step(i, h):
            z, r, c = tf.split(tf.matmul(h, kernel), 3, axis=-1)
            return i + 1, tf.sigmoid(z) * h + (1.0 - tf.sigmoid(z)) * tf.tanh(r * c)

        return tf.while_loop(lambda i, _: i < TF_LOOP_STEPS, step, (tf.constant(0), h))[1]

    h = tf.ones([256, 32])
    recurrence(h)  # trace once, outside the timing
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        recurrence(h).numpy()
        best = min(best, time.perf_counter() - started)
    return best / TF_LOOP_STEPS * 1e6


def machine_speed() -> dict[str, float]:
    """Both readings, rounded, as a dict for a bench's JSON."""
    return {"python_loop_s": round(python_loop_seconds(), 3), "tf_step_us": round(tf_step_microseconds(), 1)}


def machine_speed_in_subprocess() -> dict[str, float]:
    """``machine_speed()`` read in a fresh process, so the bench's own process (its imports, its
    memory, the process tree a bench measures) is left as it was."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def describe(speed: dict[str, float]) -> str:
    """One line for a results table."""
    return (f"python loop {speed['python_loop_s']:.2f} s ({PYTHON_LOOP_ADDS:,} adds), "
            f"tf.while_loop step {speed['tf_step_us']:.0f} us (lower is faster)")


if __name__ == "__main__":
    reading = machine_speed()
    print(describe(reading))
    print(json.dumps(reading))
