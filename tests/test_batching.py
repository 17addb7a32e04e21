"""serving.batching.Batcher on its own: thread callers (REST, warmup) and event-loop callers (gRPC)
share batches, each gets exactly its own rows back, and errors reach every request of a batch."""

from __future__ import annotations

import asyncio
import re
import threading

import numpy as np
import pytest

from serving.batching import Batcher, BatchingParameters, parse_batching_parameters
from serving.errors import invalid


class DoublingServable:
    """Stands in for a loaded version: ``outputs = 2 * inputs``; records every batch it runs."""

    name = "doubling"

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def check_inputs(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(inputs) != {"x"}:
            raise invalid("input tensor alias not found in signature")
        return inputs

    def run(self, signature: str, inputs: dict[str, np.ndarray], output_filter: list[str] | None) -> dict[str, np.ndarray]:
        with self._lock:
            self.batches.append(len(inputs["x"]))
        if self.fail_on is not None and self.fail_on in inputs["x"]:
            raise invalid("bad row in batch")
        return {"y": inputs["x"] * 2}

    call = run  # ServableVersion.call: run on inputs already checked


@pytest.fixture
def batcher():
    b = Batcher(BatchingParameters(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    yield b
    b.stop()


def test_thread_and_event_loop_callers_share_batches_and_get_their_own_rows(batcher: Batcher) -> None:
    servable = DoublingServable()
    answers: dict[float, np.ndarray] = {}

    def thread_caller(value: float) -> None:
        answers[value] = batcher.run(servable, "s", {"x": np.array([value, value + 0.5])}, None)["y"]

    async def loop_callers() -> list[np.ndarray]:
        calls = [batcher.run_async(servable, "s", {"x": np.array([float(v)])}, None) for v in (10, 11, 12)]
        return [r["y"] for r in await asyncio.gather(*calls)]

    threads = [threading.Thread(target=thread_caller, args=(float(v),)) for v in (1, 2)]
    for t in threads:
        t.start()
    loop_answers = asyncio.run(loop_callers())
    for t in threads:
        t.join()
    np.testing.assert_array_equal(answers[1.0], [2.0, 3.0])
    np.testing.assert_array_equal(answers[2.0], [4.0, 5.0])
    assert [a.tolist() for a in loop_answers] == [[20.0], [22.0], [24.0]]
    assert sum(servable.batches) == 7 and len(servable.batches) < 5  # joined, not one call per request


def test_an_error_reaches_every_request_of_its_batch_and_the_batcher_keeps_serving(batcher: Batcher) -> None:
    servable = DoublingServable(fail_on=3.0)

    async def callers() -> list[object]:
        calls = [batcher.run_async(servable, "s", {"x": np.array([float(v)])}, None) for v in (1, 2, 3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(callers())
    assert all(isinstance(r, Exception) and "bad row" in str(r) for r in results)
    np.testing.assert_array_equal(batcher.run(servable, "s", {"x": np.array([4.0])}, None)["y"], [8.0])


def test_bad_and_unbatchable_requests_do_not_join_a_batch(batcher: Batcher) -> None:
    servable = DoublingServable()
    with pytest.raises(Exception, match="alias not found"):
        batcher.run(servable, "s", {"wrong": np.array([1.0])}, None)
    big = np.arange(20, dtype=float)  # more rows than max_batch_size: runs alone, at once
    np.testing.assert_array_equal(asyncio.run(batcher.run_async(servable, "s", {"x": big}, None))["y"], big * 2)
    assert servable.batches == [20]


def test_batching_parameters_file_is_read_like_tf_serving_and_what_is_not_applied_is_named(caplog) -> None:
    text = """
    # a TF Serving batching_parameters_file
    max_batch_size { value: 128 }
    batch_timeout_micros { value: 0 }
    num_batch_threads { value: 4 }
    thread_pool_name { value: "batch_threads" }
    allowed_batch_sizes: 32
    allowed_batch_sizes: 128
    pad_variable_length_inputs: true
    """
    with caplog.at_level("WARNING", logger="embedpipe.serving"):
        params = parse_batching_parameters(text)

    assert params == BatchingParameters(max_batch_size=128, batch_timeout_micros=0, num_batch_threads=4)
    assert "not applied by embedpipe serve" in caplog.text
    assert "allowed_batch_sizes, pad_variable_length_inputs, thread_pool_name" in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size { value: 0 }", "max_batch_size must be >= 1, got 0"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1, got 0"),
        ("batch_timeout_micros { value: -5 }", "batch_timeout_micros must be >= 0, got -5"),
        ("max_batch_size { value: lots }", "max_batch_size must be an integer, got lots"),
        ("max_batch_size { value: 8 } }", "cannot read '}'"),
        ("max_batch_size = 8", "cannot read 'max_batch_size = 8'"),
    ],
)
def test_bad_batching_parameters_name_the_field_or_the_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_batching_parameters(text)


def test_embedpipe_serve_refuses_bad_batching_flags_without_a_traceback(tmp_path, capsys) -> None:
    from serving.server import main

    code = main(["--port=0", "--model_base_path", str(tmp_path), "--enable_batching", "--num_batch_threads=0"])

    assert code == 2
    assert capsys.readouterr().err.strip() == "embedpipe serve: batching parameter num_batch_threads must be >= 1, got 0"
