"""Server-side batching of concurrent Predict calls, TF Serving style.

Requests for the same (version, signature, outputs) wait up to ``batch_timeout_micros`` for
company; their inputs are concatenated along dimension 0 (up to ``max_batch_size`` rows), run
once on a batch thread, and the outputs split back by each request's row count. Requests that
cannot be joined (scalar inputs, different inner shapes, more rows than a batch) run on their own.
Callers wait either on a thread (``run``: REST, warmup) or on the gRPC event loop (``run_async``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

import grpc
import numpy as np

from serving.errors import ServingError
from serving.monitoring import Metrics
from serving.servable import ServableVersion

log = logging.getLogger("embedpipe.serving")


@dataclass(frozen=True)
class BatchingParameters:
    """The knobs of TF Serving's BatchingParameters that this batcher honours."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 1000
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"batching parameter {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batching parameter batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")


# One field of a BatchingParameters text proto: `name { value: V }` (a wrapper) or `name: V`.
_FIELD = re.compile(r'\s*(\w+)\s*(?:\{\s*value\s*:\s*("[^"]*"|[^\s}]+)\s*\}|:\s*("[^"]*"|\S+))\s*')


def parse_batching_parameters(text: str) -> BatchingParameters:
    """Read a ``--batching_parameters_file`` text proto (``max_batch_size { value: 128 }``).

    ValueError naming the field or the text that cannot be read. TF Serving's other fields
    (``allowed_batch_sizes``, ``pad_variable_length_inputs``, ...) are not applied by this
    batcher; they are logged as such rather than dropped without a word.
    """
    text = re.sub(r"#[^\n]*", "", text)
    values: dict[str, int] = {}
    not_applied: list[str] = []
    position = 0
    while position < len(text) and text[position:].strip():
        match = _FIELD.match(text, position)
        if match is None:
            raise ValueError(f"batching parameters: cannot read {text[position:].strip()[:40]!r}")
        name, value = match.group(1), match.group(2) or match.group(3)
        if name in BatchingParameters.__dataclass_fields__:
            try:
                values[name] = int(value)
            except ValueError:
                raise ValueError(f"batching parameter {name} must be an integer, got {value}") from None
        else:
            not_applied.append(name)
        position = match.end()
    if not_applied:
        log.warning("batching parameters not applied by embedpipe serve (it honours %s): %s",
                    ", ".join(BatchingParameters.__dataclass_fields__), ", ".join(sorted(set(not_applied))))
    return BatchingParameters(**values)


@dataclass
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    on_done: Callable[[], None] | None = None  # a thread waiter: called on the batch thread when done
    future: asyncio.Future | None = None  # an event-loop waiter: resolved on its loop when done
    outputs: dict[str, np.ndarray] | None = None
    error: BaseException | None = None

    def result(self) -> dict[str, np.ndarray]:
        if self.error is not None:
            raise self.error
        assert self.outputs is not None
        return self.outputs


def _resolve(futures: list[asyncio.Future]) -> None:
    for future in futures:
        if not future.done():  # a cancelled request (client gone) is already done
            future.set_result(None)


class Batcher:
    """Joins concurrent requests; ``run`` blocks until the caller's own rows are answered."""

    def __init__(self, params: BatchingParameters, metrics: Metrics | None = None) -> None:
        """``metrics``: where each processed batch's size is counted (TF's processed_batch_size_v2)."""
        self.params = params
        self.metrics = metrics or Metrics()
        self._queues: dict[tuple, list[_Task]] = {}
        self._deadlines: dict[tuple, float] = {}
        self._servables: dict[tuple, tuple[ServableVersion, str, list[str] | None]] = {}
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._worker, name=f"embedpipe-batch-{i}", daemon=True) for i in range(params.num_batch_threads)
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _batchable(inputs: dict[str, np.ndarray]) -> int | None:
        rows = {a.shape[0] if a.ndim else None for a in inputs.values()}
        return rows.pop() if len(rows) == 1 and None not in rows else None

    def run(self, servable: ServableVersion, signature: str, inputs: dict[str, np.ndarray], output_filter: list[str] | None) -> dict[str, np.ndarray]:
        """Outputs for these inputs, computed in a batch with concurrent requests when possible (blocks this thread)."""
        done = threading.Event()
        task = self._submit(servable, signature, inputs, output_filter, on_done=done.set)
        if task is None:  # checked by _submit, runs on its own
            return servable.call(signature, inputs, output_filter)
        done.wait()
        return task.result()

    async def run_async(
        self, servable: ServableVersion, signature: str, inputs: dict[str, np.ndarray], output_filter: list[str] | None
    ) -> dict[str, np.ndarray]:
        """``run`` for a caller on an asyncio event loop: the loop keeps serving while the batch runs."""
        future = asyncio.get_running_loop().create_future()
        task = self._submit(servable, signature, inputs, output_filter, future=future)
        if task is None:  # checked by _submit, runs on its own
            return servable.call(signature, inputs, output_filter)
        await future
        return task.result()

    def _submit(
        self,
        servable: ServableVersion,
        signature: str,
        inputs: dict[str, np.ndarray],
        output_filter: list[str] | None,
        on_done: Callable[[], None] | None = None,
        future: asyncio.Future | None = None,
    ) -> _Task | None:
        """Queue a request for a batch (its waiter: ``on_done`` or ``future``); None when it cannot join one."""
        servable.check_inputs(signature, inputs)  # a bad request fails alone, before joining a batch
        rows = self._batchable(inputs)
        if rows is None or rows > self.params.max_batch_size:
            return None
        shapes = tuple(sorted((k, a.shape[1:], a.dtype.str) for k, a in inputs.items()))
        key = (id(servable), signature, tuple(output_filter or ()), shapes)
        task = _Task(inputs, rows, on_done, future)
        with self._cond:
            queue = self._queues.setdefault(key, [])
            if sum(t.rows for t in queue) >= self.params.max_batch_size * self.params.max_enqueued_batches:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "The batch scheduling queue to which this task was submitted is full")
            if not queue:
                self._deadlines[key] = time.monotonic() + self.params.batch_timeout_micros / 1e6
            queue.append(task)
            self._servables[key] = (servable, signature, output_filter)
            self._cond.notify()
        return task

    def _ready_key(self, now: float) -> tuple | None:
        for key, queue in self._queues.items():
            if queue and (sum(t.rows for t in queue) >= self.params.max_batch_size or now >= self._deadlines[key]):
                return key
        return None

    def _worker(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    key = self._ready_key(now)
                    if key is not None:
                        break
                    pending = [self._deadlines[k] for k, q in self._queues.items() if q]
                    self._cond.wait(timeout=max(0.0, min(pending) - now) if pending else None)
                queue = self._queues[key]
                batch, total = [], 0
                while queue and total + queue[0].rows <= self.params.max_batch_size:
                    total += queue[0].rows
                    batch.append(queue.pop(0))
                if queue:
                    self._deadlines[key] = time.monotonic()  # leftovers go out in the next batch
                servable, signature, output_filter = self._servables[key]
            self.metrics.batch_processed(servable.name, signature, total)
            self._process(servable, signature, output_filter, batch)

    @staticmethod
    def _process(servable: ServableVersion, signature: str, output_filter: list[str] | None, batch: list[_Task]) -> None:
        try:
            joined = {k: np.concatenate([t.inputs[k] for t in batch], axis=0) for k in batch[0].inputs}
            outputs = servable.run(signature, joined, output_filter)
            start = 0
            for t in batch:
                t.outputs = {k: v[start : start + t.rows] for k, v in outputs.items()}
                start += t.rows
        except BaseException as e:  # every waiting request gets the error
            for t in batch:
                t.error = e
        finally:
            futures_by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future]] = {}
            for t in batch:
                if t.future is not None:
                    futures_by_loop.setdefault(t.future.get_loop(), []).append(t.future)
                elif t.on_done is not None:
                    t.on_done()
            for loop, waiting in futures_by_loop.items():  # one wake-up per loop and batch, not per request
                loop.call_soon_threadsafe(_resolve, waiting)

    def stop(self) -> None:
        """Let the worker threads end."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
