"""The HTTP app: the state the routes share (`ServerState`) and the wiring of paths to the handlers in
rest_routes.py, with the model loading at start-up on the first model worker's thread (the model workers'
threads later run every batch: batching.model_thread).

Every error is `{"error": "..."}` with a 4xx/5xx status, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Any, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench.serving import openai_api, rest_routes
from workbench.serving.args import ServeConfig
from workbench.serving.backends import make_runner
from workbench.serving.batching import BatchQueue, model_thread
from workbench.serving.errors import ModelNotFound, NotReady, PayloadTooLarge
from workbench.serving.prometheus import ServerMetrics
from workbench.serving.predictor import Predictor
from workbench.serving.runner import EncoderRunner

log = logging.getLogger("workbench.serve")


class ServerState:
    """What the routes share: the config, the model (once loaded) and the metrics."""

    def __init__(self, config: ServeConfig, runner: EncoderRunner | None = None):
        self.config = config
        self.runner = runner or make_runner(config)
        self.metrics = ServerMetrics()
        # One thread per model worker (batching.BatchQueue): the first loads the model; each warms it up,
        # then runs batches.
        self.model_threads = [model_thread() for _ in range(config.model_workers or 1)]
        self.queue: BatchQueue | None = None
        self.predictor: Predictor | None = None
        self.ready = False
        self.load_error: str | None = None
        self.on_shutdown: list[Callable[[], Any]] = []  # coroutines awaited before the queue stops (gRPC)
        self.started = int(time.time())  # the OpenAI model card's `created`

    # -- model lifecycle --------------------------------------------------------------------------
    def load_model(self) -> None:
        """Runs on the first model worker's thread at start-up: health answers while the model loads."""
        try:
            self.runner.load()
            self.runner.warm_up()
        except BaseException as exc:  # SystemExit from argument checks included
            self.load_error = str(exc) or type(exc).__name__
            log.error("model failed to load: %s", self.load_error)
            raise

    def start_queue(self) -> None:
        runner, config = self.runner, self.config
        self.queue = BatchQueue(
            runner.prepare, runner.forward,
            max_batch_size=config.max_batch_size, max_batch_tokens=config.max_batch_tokens,
            max_delay_s=config.max_batch_delay_ms / 1000.0, max_queue_size=config.max_queue_size,
            max_positions=runner.max_positions, split_overhead_tokens=runner.split_overhead_tokens,
            on_batch=self.metrics.observe_batch, executors=self.model_threads)
        self.queue.start()
        self.predictor = Predictor(config, runner, self.queue)
        self.ready = True

    # -- checks the routes share --------------------------------------------------------------------
    def check_model(self, name: str) -> Predictor:
        if name != self.config.model_name:
            raise ModelNotFound(name, [self.config.model_name])
        if not self.ready or self.predictor is None:
            reason = f": {self.load_error}" if self.load_error else " (still loading)"
            raise NotReady(f"model {name} is not ready{reason}")
        return self.predictor

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes "
                                  f"(--max_request_bytes)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes (--max_request_bytes)")
            chunks.append(chunk)
        return b"".join(chunks)


# (path, methods, handler, metrics route name or None for not counted, OpenAI error shape)
ROUTES: tuple[tuple[str, str, Callable, str | None, bool], ...] = (
    ("/", "GET", rest_routes.root, "root", False),
    ("/metrics", "GET", rest_routes.metrics, None, False),
    ("/v1/models", "GET", rest_routes.v1_list, "v1_list", False),
    ("/v1/models/{name}:predict", "POST", rest_routes.v1_predict, "v1_predict", False),
    ("/v1/models/{name}", "GET", rest_routes.v1_model_ready, "v1_ready", False),
    ("/v2", "GET", rest_routes.v2_server_metadata, "v2_server_metadata", False),
    ("/v2/health/live", "GET", rest_routes.v2_live, "v2_live", False),
    ("/v2/health/ready", "GET", rest_routes.v2_ready, "v2_ready", False),
    ("/v2/models/{name}", "GET", rest_routes.v2_model_metadata, "v2_model_metadata", False),
    ("/v2/models/{name}/ready", "GET", rest_routes.v2_model_ready, "v2_model_ready", False),
    ("/v2/models/{name}/infer", "POST", rest_routes.v2_infer, "v2_infer", False),
    ("/models/{name}", "POST", rest_routes.hf_entities, "hf_entities", False),
    (openai_api.PREFIX + "/embeddings", "POST", rest_routes.openai_embeddings, "openai_embeddings", True),
    (openai_api.PREFIX + "/models", "GET", rest_routes.openai_models, "openai_models", True),
    (openai_api.PREFIX + "/models/{name}", "GET", rest_routes.openai_model, "openai_model", True),
)


def routes_for(state: ServerState) -> list[Route]:
    """The route table bound to one server's state."""
    routes = []
    for path, method, handler, name, openai in ROUTES:
        endpoint = functools.partial(handler, state) if name is None else \
            functools.partial(rest_routes.dispatch, state, name, handler, openai)
        routes.append(Route(path, endpoint, methods=[method]))
    return routes


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {404: f"no route for {request.method} {request.url.path}",
               405: f"method {request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))
    return rest_routes.error_response(message, exc.status_code)


def build_app(state: ServerState, load_in_background: bool = True,
              on_load_failure: Callable[[], None] | None = None) -> Starlette:
    """The Starlette app. The model loads on the first model worker's thread when the app starts; if it
    cannot load, `on_load_failure` runs (the server uses it to stop, so the process exits with the reason)."""
    @contextlib.asynccontextmanager
    async def lifespan(app):
        loader = None
        if load_in_background:
            loader = asyncio.get_running_loop().create_task(load_and_start(state, on_load_failure))
        else:
            state.start_queue()
        yield
        if loader is not None and not loader.done():
            loader.cancel()
        for stop in state.on_shutdown:
            await stop()
        if state.queue is not None:
            await state.queue.stop()
        for thread in state.model_threads:
            thread.shutdown(wait=False, cancel_futures=True)

    return Starlette(routes=routes_for(state), exception_handlers={HTTPException: http_error}, lifespan=lifespan)


async def load_and_start(state: ServerState, on_load_failure: Callable[[], None] | None) -> None:
    """Load the model on the first model worker's thread, warm it up on every other worker's, then open the
    queue; if it cannot load, `on_load_failure` runs."""
    loop = asyncio.get_running_loop()
    first, *others = state.model_threads
    try:
        await loop.run_in_executor(first, state.load_model)
        await asyncio.gather(*(loop.run_in_executor(thread, state.runner.warm_up) for thread in others))
    except BaseException as exc:  # load_model has logged it and kept the reason
        if state.load_error is None:
            state.load_error = str(exc) or type(exc).__name__
        if on_load_failure is not None:
            on_load_failure()
        if isinstance(exc, asyncio.CancelledError):
            raise
        return
    state.start_queue()
