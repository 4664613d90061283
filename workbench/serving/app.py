"""HTTP routes: KServe V1, Open Inference Protocol V2, health, metadata and /metrics.

Every error is `{"error": "..."}` with a 4xx/5xx status, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from typing import Any, Callable

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workbench import __version__
from workbench.serving import entities, openai_api, protocol_v1, protocol_v2
from workbench.serving.args import ServeConfig
from workbench.serving.backends import make_runner
from workbench.serving.batching import BatchQueue
from workbench.serving.errors import BadRequest, ModelNotFound, NotReady, PayloadTooLarge, RequestError
from workbench.serving.prometheus import ServerMetrics
from workbench.serving.predictor import Predictor
from workbench.serving.runner import EncoderRunner
from workbench.tasks import LOGIT_TASKS, TEXT_EMBEDDING, Mode

log = logging.getLogger("workbench.serve")


def dump_json(payload: Any) -> bytes:
    # Integer dict keys become strings, as the json module writes KServe's answers.
    return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def json_response(payload: Any, status_code: int = 200) -> Response:
    return Response(dump_json(payload), status_code=status_code, media_type="application/json")


def error_response(message: str, status_code: int) -> Response:
    return json_response({"error": message}, status_code)


def openai_error_response(exc: RequestError) -> Response:
    """A RequestError in OpenAI's error shape (the /openai routes)."""
    code = "model_not_found" if isinstance(exc, ModelNotFound) else getattr(exc, "code", None)
    return json_response(openai_api.error_body(exc.message, exc.status_code, getattr(exc, "param", None), code),
                         exc.status_code)


class ServerState:
    """What the routes share: the config, the model (once loaded) and the metrics."""

    def __init__(self, config: ServeConfig, runner: EncoderRunner | None = None):
        self.config = config
        self.runner = runner or make_runner(config)
        self.metrics = ServerMetrics()
        self.queue: BatchQueue | None = None
        self.predictor: Predictor | None = None
        self.ready = False
        self.load_error: str | None = None
        self.on_shutdown: list[Callable[[], Any]] = []  # coroutines awaited before the queue stops (gRPC)
        self.started = int(time.time())  # the OpenAI model card's `created`

    # -- model lifecycle --------------------------------------------------------------------------
    def load_model(self) -> None:
        """Runs on a thread at start-up: health answers while the model loads."""
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
            on_batch=self.metrics.observe_batch)
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


def parse_json(raw: bytes) -> Any:
    """Parse a body as JSON whatever its content type (plain `curl -d` sends form encoding)."""
    if not raw.strip():
        raise BadRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON in the request body: {exc}") from None


# ---------------------------------------------------------------------------------------------------
# Route handlers. Each returns a Response; errors are raised and turned into JSON by `handle`.
# ---------------------------------------------------------------------------------------------------

def build_app(state: ServerState, load_in_background: bool = True,
              on_load_failure: Callable[[], None] | None = None) -> Starlette:
    """The Starlette app. The model loads on a thread when the app starts; if it cannot load,
    `on_load_failure` runs (the server uses it to stop, so the process exits with the reason)."""
    config = state.config

    def handle(route: str, openai: bool = False):
        """Wrap a handler: RequestError -> its status, anything else -> 500; count and time it.
        `openai`: errors in OpenAI's shape instead of `{"error": "..."}`."""

        def decorator(fn):
            async def endpoint(request: Request) -> Response:
                started = time.perf_counter()
                try:
                    response = await fn(request)
                except RequestError as exc:
                    response = openai_error_response(exc) if openai else error_response(exc.message, exc.status_code)
                except Exception as exc:  # a bug or a model failure: answer, log, keep serving
                    log.error("%s failed: %s\n%s", route, exc, traceback.format_exc())
                    message = f"internal error: {type(exc).__name__}: {exc}"
                    response = json_response(openai_api.error_body(message, 500), 500) if openai else \
                        error_response(message, 500)
                state.metrics.requests.labels(route, str(response.status_code)).inc()
                state.metrics.latency.labels(route).observe(time.perf_counter() - started)
                return response

            return endpoint

        return decorator

    # -- V1 ----------------------------------------------------------------------------------------
    @handle("v1_list")
    async def v1_list(request: Request) -> Response:
        return json_response({"models": [config.model_name]})

    @handle("v1_ready")
    async def v1_model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        state.check_model(name)
        return json_response({"name": name, "ready": True})

    @handle("v1_predict")
    async def v1_predict(request: Request) -> Response:
        predictor = state.check_model(request.path_params["name"])
        body = parse_json(await state.read_body(request))
        texts = protocol_v1.parse_texts(body)
        if entities.wants_entities(body.get("parameters")):
            params = entities.parse_parameters(body["parameters"], strict=False)
            found = await predictor.entities(texts, params)
            payload = protocol_v1.build_entity_response(found.entities, params.aggregation_strategy, found.truncated)
            return Response(await asyncio.to_thread(dump_json, payload), media_type="application/json")
        prediction = await predictor.predict(texts)
        offsets = prediction.offset_mapping() if state.runner.config.return_offsets_mapping and \
            predictor.task == "token_classification" else None
        payload = protocol_v1.build_response(prediction.inferences, offsets)
        body = dump_json(payload) if predictor.is_small(texts) else await asyncio.to_thread(dump_json, payload)
        return Response(body, media_type="application/json")

    # -- V2 ----------------------------------------------------------------------------------------
    @handle("v2_server_metadata")
    async def v2_metadata(request: Request) -> Response:
        return json_response({"name": "workbench", "version": __version__, "extensions": ["binary_tensor_data"]})

    @handle("v2_live")
    async def v2_live(request: Request) -> Response:
        return json_response({"live": True})

    @handle("v2_ready")
    async def v2_ready(request: Request) -> Response:
        if not state.ready:
            return json_response({"ready": False}, 503)
        return json_response({"ready": True})

    @handle("v2_model_metadata")
    async def v2_model_metadata(request: Request) -> Response:
        name = request.path_params["name"]
        state.check_model(name)
        return json_response({
            "name": name,
            "versions": [],
            "platform": "workbench/transformers",
            "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
            "outputs": state.runner.output_metadata(),
            "parameters": {"task": state.runner.task,
                           "mode": config.mode.value if state.runner.task in LOGIT_TASKS else Mode.DEFAULT.value,
                           "labels": {str(k): v for k, v in state.runner.id2label.items()}},
        })

    @handle("v2_model_ready")
    async def v2_model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        state.check_model(name)
        return json_response({"name": name, "ready": True})

    async def v2_reply(build: Callable[[], dict], binary_outputs: set[str], inline: bool) -> Response:
        """Build a V2 response and serialise it: JSON, or the binary tensor extension when asked.
        Small answers are rendered on the event loop; large ones on a thread."""

        def render() -> tuple[bytes, int | None]:
            response = build()
            return protocol_v2.encode_binary(response, binary_outputs) or (dump_json(response), None)

        body, header_length = render() if inline else await asyncio.to_thread(render)
        if header_length is None:
            return Response(body, media_type="application/json")
        return Response(body, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header_length)})

    async def v2_entities(predictor: Predictor, parsed: protocol_v2.V2Request) -> Response:
        """V2 with parameters.aggregation_strategy: output-0 holds one JSON entity list per text."""
        params = entities.parse_parameters(parsed.parameters, strict=False)
        found = await predictor.entities(parsed.texts, params)

        def build() -> dict:
            outputs = [protocol_v2.entity_output("output-0", found.entities, params.aggregation_strategy)]
            outputs = protocol_v2.select_outputs(outputs, parsed.requested_outputs)
            return protocol_v2.build_response(config.model_name, parsed.id, outputs,
                                              protocol_v2.truncation_parameters(found.truncated))

        return await v2_reply(build, parsed.binary_outputs, inline=False)

    @handle("v2_infer")
    async def v2_infer(request: Request) -> Response:
        predictor = state.check_model(request.path_params["name"])
        raw = await state.read_body(request)
        header, binary = protocol_v2.split_binary_body(raw, request.headers.get(protocol_v2.BINARY_HEADER))
        parsed = protocol_v2.parse_request(parse_json(header), binary)
        if entities.wants_entities(parsed.parameters):
            return await v2_entities(predictor, parsed)
        prediction = await predictor.predict(parsed.texts)

        def build() -> dict:
            outputs = [protocol_v2.to_tensor("output-0", prediction.inferences)]
            if config.return_offsets_mapping and predictor.task == "token_classification":
                offsets = prediction.offset_mapping()
                outputs.append({"name": "offset_mapping", "shape": [len(offsets), prediction.request_length, 2],
                                "datatype": "INT64", "parameters": None,
                                "data": [v for row in offsets for pair in row for v in pair]})
            outputs = protocol_v2.select_outputs(outputs, parsed.requested_outputs)
            return protocol_v2.build_response(config.model_name, parsed.id, outputs)

        return await v2_reply(build, parsed.binary_outputs, inline=predictor.is_small(parsed.texts))

    # -- Hugging Face Inference API (token classification) ---------------------------------------------
    @handle("hf_entities")
    async def hf_entities(request: Request) -> Response:
        predictor = state.check_model(request.path_params["name"])
        texts, single, params = entities.parse_hf_request(parse_json(await state.read_body(request)))
        found = await predictor.entities(texts, params)
        payload = found.entities[0] if single else found.entities
        body = await asyncio.to_thread(dump_json, payload)
        return Response(body, media_type="application/json",
                        headers={"X-Workbench-Truncated": ",".join("true" if t else "false" for t in found.truncated)})

    # -- OpenAI embeddings API (text_embedding), as KServe's runtime serves it -----------------------------
    @handle("openai_embeddings", openai=True)
    async def openai_embeddings(request: Request) -> Response:
        parsed = openai_api.parse_embedding_request(parse_json(await state.read_body(request)))
        predictor = state.check_model(parsed.model)
        if predictor.task != TEXT_EMBEDDING:
            raise openai_api.OpenAIRequestError(
                f"model {parsed.model} serves {predictor.task}; embeddings are served by a model started with "
                f"--task text_embedding (or a base model without a task head)", param="model")
        openai_api.check_dimensions(parsed, state.runner.hidden_size)
        prediction = await predictor.predict(parsed.texts)
        tokens = sum(len(enc) for enc in prediction.encoded)
        payload = openai_api.embedding_response(parsed, prediction.inferences, tokens)
        body = dump_json(payload) if predictor.is_small(parsed.texts) else await asyncio.to_thread(dump_json, payload)
        return Response(body, media_type="application/json")

    @handle("openai_models", openai=True)
    async def openai_models(request: Request) -> Response:
        return json_response(openai_api.models_response(config.model_name, state.started))

    @handle("openai_model", openai=True)
    async def openai_model(request: Request) -> Response:
        name = request.path_params["name"]
        if name != config.model_name:
            raise ModelNotFound(name, [config.model_name])
        return json_response(openai_api.model_card(name, state.started))

    # -- misc ----------------------------------------------------------------------------------------
    @handle("root")
    async def root(request: Request) -> Response:
        return json_response({"status": "alive"})

    async def metrics(request: Request) -> Response:
        if state.queue is not None:
            state.metrics.queue_depth.set(state.queue.depth)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    routes = [
        Route("/", root, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/models", v1_list, methods=["GET"]),
        Route("/v1/models/{name}:predict", v1_predict, methods=["POST"]),
        Route("/v1/models/{name}", v1_model_ready, methods=["GET"]),
        Route("/v2", v2_metadata, methods=["GET"]),
        Route("/v2/health/live", v2_live, methods=["GET"]),
        Route("/v2/health/ready", v2_ready, methods=["GET"]),
        Route("/v2/models/{name}", v2_model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/ready", v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/models/{name}", hf_entities, methods=["POST"]),
        Route(openai_api.PREFIX + "/embeddings", openai_embeddings, methods=["POST"]),
        Route(openai_api.PREFIX + "/models", openai_models, methods=["GET"]),
        Route(openai_api.PREFIX + "/models/{name}", openai_model, methods=["GET"]),
    ]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = {404: f"no route for {request.method} {request.url.path}",
                   405: f"method {request.method} is not allowed on {request.url.path}"}.get(
            exc.status_code, str(exc.detail))
        return error_response(message, exc.status_code)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        if load_in_background:
            def load_then_start():
                try:
                    state.load_model()
                except BaseException:
                    if on_load_failure is not None:
                        loop.call_soon_threadsafe(on_load_failure)
                    return
                loop.call_soon_threadsafe(state.start_queue)

            threading.Thread(target=load_then_start, name="model-loader", daemon=True).start()
        else:
            state.start_queue()
        yield
        for stop in state.on_shutdown:
            await stop()
        if state.queue is not None:
            await state.queue.stop()

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
