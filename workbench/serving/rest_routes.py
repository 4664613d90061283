"""REST route handlers: KServe V1, Open Inference Protocol V2, the Hugging Face Inference API's entity
route, OpenAI embeddings, health and /metrics.

Each handler is a module-level `async (state, request) -> Response` over the data plane (`inference`,
`dataplane`) and the codecs (`protocol_v1`, `protocol_v2`, `openai_api`): a unit test can call one with a
`ServerState` and a Starlette request. Errors are raised as `RequestError`; `dispatch` turns them into
`{"error": "..."}` (OpenAI's shape on the /openai routes) with their status, counts and times every call.
`app.build_app` only wires these to paths.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import TYPE_CHECKING, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from workbench.serving import entities, inference, openai_api, protocol_v1, protocol_v2
from workbench.serving.errors import ModelNotFound, RequestError
from workbench.serving.wire_json import dump_json, parse_json
from workbench.tasks import TEXT_EMBEDDING

if TYPE_CHECKING:
    from workbench.serving.app import ServerState

log = logging.getLogger("workbench.serve")

Handler = Callable[["ServerState", Request], Awaitable[Response]]
JSON = "application/json"


def json_response(payload, status_code: int = 200) -> Response:
    return Response(dump_json(payload), status_code=status_code, media_type=JSON)


def error_response(message: str, status_code: int) -> Response:
    return json_response({"error": message}, status_code)


def openai_error_response(exc: RequestError) -> Response:
    """A RequestError in OpenAI's error shape (the /openai routes)."""
    code = "model_not_found" if isinstance(exc, ModelNotFound) else getattr(exc, "code", None)
    return json_response(openai_api.error_body(exc.message, exc.status_code, getattr(exc, "param", None), code),
                         exc.status_code)


async def dispatch(state: "ServerState", route: str, handler: Handler, openai: bool, request: Request) -> Response:
    """Run one handler: RequestError -> its status, anything else -> 500 (logged); the server keeps
    serving. Counted and timed in /metrics under `route`. Wired with functools.partial (build_app)."""
    started = time.perf_counter()
    try:
        response = await handler(state, request)
    except RequestError as exc:
        response = openai_error_response(exc) if openai else error_response(exc.message, exc.status_code)
    except Exception as exc:  # a bug or a model failure: answer, log, keep serving
        log.error("%s failed: %s\n%s", route, exc, traceback.format_exc())
        message = f"internal error: {type(exc).__name__}: {exc}"
        response = json_response(openai_api.error_body(message, 500), 500) if openai else error_response(message, 500)
    state.metrics.requests.labels(route, str(response.status_code)).inc()
    state.metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response


async def render(payload, inline: bool) -> Response:
    """JSON on the event loop for small answers, on a thread for large ones."""
    body = dump_json(payload) if inline else await asyncio.to_thread(dump_json, payload)
    return Response(body, media_type=JSON)


# -- V1 ------------------------------------------------------------------------------------------------
async def v1_list(state: "ServerState", request: Request) -> Response:
    return json_response({"models": [state.config.model_name]})


async def v1_model_ready(state: "ServerState", request: Request) -> Response:
    name = request.path_params["name"]
    state.check_model(name)
    return json_response({"name": name, "ready": True})


async def v1_predict(state: "ServerState", request: Request) -> Response:
    """V1 in, the data plane's answer out as V1."""
    name = request.path_params["name"]
    state.check_model(name)
    parsed = protocol_v1.parse_request(parse_json(await state.read_body(request)))
    result = await inference.answer(state, name, parsed)
    return await render(protocol_v1.encode_response(result), inline=result.small)


# -- V2 ------------------------------------------------------------------------------------------------
async def v2_server_metadata(state: "ServerState", request: Request) -> Response:
    return json_response(inference.server_metadata(extensions=["binary_tensor_data"]))


async def v2_live(state: "ServerState", request: Request) -> Response:
    return json_response({"live": True})


async def v2_ready(state: "ServerState", request: Request) -> Response:
    return json_response({"ready": state.ready}, 200 if state.ready else 503)


async def v2_model_metadata(state: "ServerState", request: Request) -> Response:
    return json_response(inference.model_metadata(state, request.path_params["name"]))


async def v2_model_ready(state: "ServerState", request: Request) -> Response:
    name = request.path_params["name"]
    state.check_model(name)
    return json_response({"name": name, "ready": True})


async def v2_infer(state: "ServerState", request: Request) -> Response:
    """JSON or binary V2 in; the data plane's answer out, as JSON or with the binary extension."""
    name = request.path_params["name"]
    predictor = state.check_model(name)
    raw = await state.read_body(request)
    header, binary = protocol_v2.split_binary_body(raw, request.headers.get(protocol_v2.BINARY_HEADER))
    parsed = protocol_v2.parse_request(parse_json(header), binary)
    response = await inference.infer(state, name, parsed)
    if predictor.is_small(parsed.texts) and not entities.wants_entities(parsed.parameters):
        body, header_length = protocol_v2.encode_response(response, parsed.binary_outputs)
    else:
        body, header_length = await asyncio.to_thread(protocol_v2.encode_response, response, parsed.binary_outputs)
    if header_length is None:
        return Response(body, media_type=JSON)
    return Response(body, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(header_length)})


# -- Hugging Face Inference API (token classification) --------------------------------------------------
async def hf_entities(state: "ServerState", request: Request) -> Response:
    predictor = state.check_model(request.path_params["name"])
    texts, single, params = entities.parse_hf_request(parse_json(await state.read_body(request)))
    found = await predictor.entities(texts, params)
    payload = found.entities[0] if single else found.entities
    body = await asyncio.to_thread(dump_json, payload)
    return Response(body, media_type=JSON,
                    headers={"X-Workbench-Truncated": ",".join("true" if t else "false" for t in found.truncated)})


# -- OpenAI embeddings API (text_embedding), as KServe's runtime serves it --------------------------------
async def openai_embeddings(state: "ServerState", request: Request) -> Response:
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
    return await render(payload, predictor.is_small(parsed.texts))


async def openai_models(state: "ServerState", request: Request) -> Response:
    return json_response(openai_api.models_response(state.config.model_name, state.started))


async def openai_model(state: "ServerState", request: Request) -> Response:
    name = request.path_params["name"]
    if name != state.config.model_name:
        raise ModelNotFound(name, [state.config.model_name])
    return json_response(openai_api.model_card(name, state.started))


# -- misc ------------------------------------------------------------------------------------------------
async def root(state: "ServerState", request: Request) -> Response:
    return json_response({"status": "alive"})


async def metrics(state: "ServerState", request: Request) -> Response:
    if state.queue is not None:
        state.metrics.queue_depth.set(state.queue.depth)
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")
