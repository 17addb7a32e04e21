"""The HTTP transport of the REST API: Tornado's HTTP server on the gRPC server's asyncio loop.

Why Tornado (already in the pinned stack through Jupyter, maintained, asyncio-native): it has the
deadlines a server facing the internet needs and ``http.server`` lacks, and which aiohttp and
uvicorn do not offer for the request headers (a client that sends half a request line holds its
connection until a timeout closes it): ``idle_connection_timeout`` bounds the wait for headers,
``body_timeout`` the wait for the body, ``max_body_size`` its size. Connections cost a socket and a
coroutine, not a thread; the model calls run on a pool of ``--rest_api_num_threads`` threads, each
answered 504 after ``--rest_api_timeout_in_ms`` as in TF Serving.

Limits (TF Serving's libevent server has its own; these are ours, tested in
tests/reliability/test_request_limits.py):
- a Content-Length that is not a number: 400; larger than MAX_BODY_BYTES: 413, before any of the
  body is read; a chunked body past MAX_BODY_BYTES: connection closed with 400;
- headers not complete within READ_TIMEOUT_SECONDS, or the body not within it: connection closed;
- more than MAX_CONNECTIONS open connections: the new one is closed at once; listen backlog
  LISTEN_BACKLOG.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
import tornado.httpserver
import tornado.netutil
import tornado.web

from serving.errors import ServingError, invalid
from serving.handlers import RequestHandlers
from serving.rest import RestApi, call_name, http_status

log = logging.getLogger("embedpipe.serving")

MAX_BODY_BYTES = 2**28  # 256 MiB of JSON
READ_TIMEOUT_SECONDS = 60  # for the headers of each request, and again for its body
MAX_CONNECTIONS = 1024  # open at once; each costs a socket and a few KiB, not a thread
LISTEN_BACKLOG = 128  # http.server's was 5


def default_num_threads() -> int:
    """TF Serving's default for ``--rest_api_num_threads``: four per schedulable CPU."""
    return 4 * len(os.sched_getaffinity(0))


class _BoundedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTP server, closing connections past MAX_CONNECTIONS at once."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:  # Tornado's Configurable constructor
        super().initialize(*args, **kwargs)
        self.open_connections = 0

    def handle_stream(self, stream, address) -> None:
        if self.open_connections >= MAX_CONNECTIONS:
            stream.close()
            return
        self.open_connections += 1
        super().handle_stream(stream, address)

    def on_close(self, server_conn) -> None:
        self.open_connections -= 1
        super().on_close(server_conn)


class RestServer:
    """A started REST server; ``port`` is the bound one. Stopped from any thread with ``stop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: futures.ThreadPoolExecutor) -> None:
        self.loop, self.executor = loop, executor
        self.http: _BoundedHTTPServer | None = None  # set once listening
        self.port = 0
        self.in_flight = 0  # calls running or queued on the executor; touched on the loop only

    def stop(self, grace: float = 10.0) -> None:
        """Stop listening, let running calls answer (up to ``grace`` s), close every connection."""
        asyncio.run_coroutine_threadsafe(self._stop(grace), self.loop).result()
        self.executor.shutdown(wait=True)

    async def _stop(self, grace: float) -> None:
        assert self.http is not None
        self.http.stop()
        deadline = time.monotonic() + grace
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        try:
            await asyncio.wait_for(self.http.close_all_connections(), 5)
        except asyncio.TimeoutError:
            log.warning("REST connections still open after stopping")


@tornado.web.stream_request_body  # so that a declared size is refused before any byte is read
class _Handler(tornado.web.RequestHandler):
    def initialize(self, api: RestApi, server: RestServer, cors: bool, metrics_path: str | None,
                   timeout_seconds: float) -> None:
        self.api, self.server, self.cors, self.metrics_path, self.timeout_seconds = api, server, cors, metrics_path, timeout_seconds
        self.chunks: list[bytes] = []
        self.clear()  # again: Tornado set the default headers before initialize gave us ``cors``

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        if getattr(self, "cors", False):  # --rest_api_enable_cors_support, the headers TF Serving sends
            self.set_header("Access-Control-Allow-Origin", "*")
            self.set_header("Access-Control-Allow-Methods", "POST, GET")
            self.set_header("Access-Control-Allow-Headers", "Content-Type")

    def _reply(self, code: int, data: bytes, content_type: str = "application/json") -> None:
        self.set_status(code)
        self.set_header("Content-Type", content_type)
        self.finish(data)

    def _error(self, code: int, message: str) -> None:
        self._reply(code, json.dumps({"error": message}).encode())

    def write_error(self, status_code: int, **kwargs: Any) -> None:  # Tornado's own errors (405, 500), as JSON
        self._error(status_code, self._reason)

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        declared = self.request.headers.get("Content-Length")
        if declared is not None and not declared.strip().isdigit():
            self._error(400, f"Content-Length {declared!r} is not a number of bytes")
        elif declared is not None and int(declared) > MAX_BODY_BYTES:  # refused before reading (or allocating) any of it
            self._error(413, f"the request body of {int(declared)} bytes is larger than {MAX_BODY_BYTES} bytes")
        else:
            self.request.connection.set_max_body_size(MAX_BODY_BYTES)  # a chunked body is cut off there

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def options(self, *_: str) -> None:
        self.set_status(204 if self.cors else 405)
        self.finish()

    async def get(self, *_: str) -> None:
        if self.metrics_path and self.request.path == self.metrics_path:
            self._reply(200, self.api.h.metrics.render().encode(), "text/plain; version=0.0.4")
            return
        path = self.request.path
        await self._run(lambda: self.api.get(path))

    async def post(self, *_: str) -> None:
        path, body = self.request.path, b"".join(self.chunks)
        self.chunks = []

        def call() -> dict[str, Any]:
            try:
                payload = json.loads(body or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise invalid(f"JSON Parse error: {e}") from e
            return self.api.post(path, payload)

        await self._run(call)

    async def _run(self, call: Callable[[], dict[str, Any]]) -> None:
        """``call`` on the REST thread pool, its answer serialized there too; 504 past the deadline."""
        started, status = time.perf_counter(), grpc.StatusCode.OK
        self.server.in_flight += 1
        try:
            future = self.server.loop.run_in_executor(self.server.executor, lambda: json.dumps(call()).encode())
            data = await asyncio.wait_for(future, self.timeout_seconds)
            self._reply(200, data)
        except asyncio.TimeoutError:  # a queued call is dropped; a running one ends in its thread unanswered
            status = grpc.StatusCode.DEADLINE_EXCEEDED
            self._error(504, f"Deadline exceeded: no answer within {self.timeout_seconds * 1000:.0f} ms (--rest_api_timeout_in_ms)")
        except ServingError as e:
            status = e.code
            self._error(http_status(e.code), e.message)
        except (ValueError, TypeError, KeyError) as e:
            status = grpc.StatusCode.INVALID_ARGUMENT
            self._error(400, f"{type(e).__name__}: {e}")
        except Exception as e:  # a bug of ours: answered, logged, the server goes on
            log.exception("REST %s %s failed", self.request.method, self.request.path)
            status = grpc.StatusCode.INTERNAL
            self._error(500, f"{type(e).__name__}: {e}")
        finally:
            self.server.in_flight -= 1
            model, api_name = call_name(self.request.path)
            self.api.h.metrics.request(model, api_name, "REST", status.name, time.perf_counter() - started)


def start_rest_server(handlers: RequestHandlers, loop: asyncio.AbstractEventLoop, port: int, host: str = "0.0.0.0",
                      cors: bool = False, metrics_path: str | None = None, tls: ssl.SSLContext | None = None,
                      num_threads: int = 0, timeout_ms: int = 30_000) -> RestServer:
    """The REST API on ``host:port`` (0 picks a free port), served on ``loop`` (running in another
    thread). ``cors``: TF Serving's CORS headers and OPTIONS preflights; ``metrics_path``: where
    Prometheus scrapes, None = not served; ``tls``: HTTPS, handshakes done on the loop;
    ``num_threads``: the pool running calls (0 = TF Serving's default); ``timeout_ms``: each call's
    deadline (0 = none)."""
    executor = futures.ThreadPoolExecutor(max_workers=num_threads or default_num_threads(), thread_name_prefix="embedpipe-rest")

    async def start() -> RestServer:
        server = RestServer(loop, executor)
        settings = {"api": RestApi(handlers), "server": server, "cors": cors, "metrics_path": metrics_path,
                    "timeout_seconds": timeout_ms / 1000 if timeout_ms > 0 else None}
        # log_function: no access log line per request (the metrics count them)
        app = tornado.web.Application([(r"/.*", _Handler, settings)], log_function=lambda _: None)
        server.http = _BoundedHTTPServer(app, ssl_options=tls, idle_connection_timeout=READ_TIMEOUT_SECONDS,
                                         body_timeout=READ_TIMEOUT_SECONDS, max_body_size=MAX_BODY_BYTES)
        sockets = tornado.netutil.bind_sockets(port, address=host, backlog=LISTEN_BACKLOG)
        server.http.add_sockets(sockets)
        server.port = sockets[0].getsockname()[1]
        return server

    try:
        return asyncio.run_coroutine_threadsafe(start(), loop).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise
