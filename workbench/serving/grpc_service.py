"""Open Inference Protocol over gRPC: `inference.GRPCInferenceService` on `grpc.aio`.

It runs in the REST server's process and event loop and answers from the same `ServerState` (the one
model, the one batching queue). Messages are built from `proto/inference.binpb` in a private descriptor
pool (workbench/oip_messages.py; see grpc_codegen.py for why not `_pb2` modules) and the handlers are registered generically with
their `FromString` / `SerializeToString`.

The codec is pure functions that tests call directly:
- `parse_infer_request(ModelInferRequest) -> dataplane.InferRequest`: texts from `contents.bytes_contents`
  or from `raw_input_contents` (4-byte little-endian length, then the bytes, per element), validated by
  the REST V2 parser (`protocol_v2.parse_request`), so both protocols refuse the same requests.
- `encode_infer_response(dataplane.InferResponse, raw) -> ModelInferResponse`: typed contents, or
  `raw_output_contents` when the request came raw (as KServe and MLServer answer).

Errors are gRPC status codes: INVALID_ARGUMENT (a bad request), NOT_FOUND (unknown model), UNAVAILABLE
(not ready), RESOURCE_EXHAUSTED (queue full; a message over the receive limit, refused by gRPC itself).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from workbench.oip_messages import messages
from workbench.serving import dataplane, entities, inference, protocol_v2
from workbench.serving.errors import BadRequest, ModelNotFound, NotReady, Overloaded, PayloadTooLarge, RequestError

if TYPE_CHECKING:
    import grpc

    from workbench.serving.app import ServerState

log = logging.getLogger("workbench.serve")

SERVICE = "inference.GRPCInferenceService"
# Which InferTensorContents field carries each datatype we answer with.
CONTENTS_FIELD = {"BYTES": "bytes_contents", "INT64": "int64_contents", "FP32": "fp32_contents",
                  "BOOL": "bool_contents"}


# ---------------------------------------------------------------------------------------------------
# Codec (pure)
# ---------------------------------------------------------------------------------------------------

def parameters_to_dict(parameters) -> dict[str, Any]:
    """A `map<string, InferParameter>` as a plain dict (bool, int or str values)."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice else None
    return out


def fill_parameters(target, values: dict[str, Any] | None) -> None:
    """Write a dict into a `map<string, InferParameter>`; values that are not bool/int/str go as JSON text."""
    for key, value in (values or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            target[key].string_param = json.dumps(value)


def _filled_contents(contents) -> list[str]:
    return [field.name for field, _ in contents.ListFields()]


def _decode_texts(items, where: str) -> list[str]:
    texts = []
    for index, item in enumerate(items):
        try:
            texts.append(item.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"{where} element {index} is not valid UTF-8 ({exc})") from None
    return texts


def parse_infer_request(request) -> dataplane.InferRequest:
    """A ModelInferRequest as the data plane's request; BadRequest says what is wrong."""
    raw = list(request.raw_input_contents)
    inputs = list(request.inputs)
    if raw:
        typed = [tensor.name for tensor in inputs if _filled_contents(tensor.contents)]
        if typed:
            raise BadRequest(f"input(s) {typed} carry contents while the request also has raw_input_contents; "
                             f"send each input one way: contents or raw_input_contents")
        if len(raw) != len(inputs):
            raise BadRequest(f"the request has {len(inputs)} input(s) but {len(raw)} raw_input_contents buffer(s); "
                             f"send one buffer per input")
    tensors = []
    for index, tensor in enumerate(inputs):
        where = f"input '{tensor.name}'"
        data: list[str] = []
        if tensor.datatype == "BYTES":  # any other datatype is refused by parse_request below
            if raw:
                data = protocol_v2._decode_binary_bytes(raw[index], f"{where} raw_input_contents[{index}]")
            else:
                others = [name for name in _filled_contents(tensor.contents) if name != "bytes_contents"]
                if others:
                    raise BadRequest(f"{where} is BYTES but carries {', '.join(others)}; "
                                     f"send the texts in contents.bytes_contents")
                data = _decode_texts(tensor.contents.bytes_contents, where)
        tensors.append({"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape),
                        "data": data})
    parameters = parameters_to_dict(request.parameters)
    body = {"id": request.id or None, "inputs": tensors, "parameters": parameters,
            "outputs": [{"name": o.name} for o in request.outputs] if request.outputs else None}
    parsed = protocol_v2.parse_request(body)
    if entities.wants_entities(parsed.parameters):
        parsed.parameters = entity_parameters(parsed.parameters)
    parsed.raw = bool(raw)
    return parsed


def encode_infer_response(response: dataplane.InferResponse, raw: bool = False):
    """The data plane's response as a ModelInferResponse: typed contents, or raw_output_contents."""
    message = messages().ModelInferResponse(model_name=response.model_name, id=response.id)
    fill_parameters(message.parameters, response.parameters)
    for output in response.outputs:
        tensor = message.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        fill_parameters(tensor.parameters, output.parameters)
        if raw:
            message.raw_output_contents.append(protocol_v2.binary_buffer(output.datatype, output.data))
        elif output.datatype == "BYTES":
            tensor.contents.bytes_contents.extend(s.encode("utf-8") for s in output.data)
        else:
            getattr(tensor.contents, CONTENTS_FIELD[output.datatype]).extend(output.data)
    return message


def status_for(error: RequestError) -> "grpc.StatusCode":
    import grpc

    if isinstance(error, (Overloaded, PayloadTooLarge)):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, NotReady):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND
    return {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
            413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.UNAVAILABLE}.get(
        error.status_code, grpc.StatusCode.INTERNAL)


def entity_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    """gRPC parameters are scalars: `ignore_labels` may come as a JSON list in a string_param."""
    labels = parameters.get("ignore_labels")
    if not isinstance(labels, str):
        return parameters
    try:
        decoded = json.loads(labels)
    except ValueError:
        raise BadRequest(f"'parameters.ignore_labels' must be a JSON list of label names, got {labels!r:.100}") from None
    return {**parameters, "ignore_labels": decoded}


class Servicer:
    """The six RPCs, each `async (request message) -> response message`; errors are RequestError."""

    def __init__(self, state: "ServerState"):
        self.state = state
        self.m = messages()

    async def ServerLive(self, request):
        return self.m.ServerLiveResponse(live=True)

    async def ServerReady(self, request):
        return self.m.ServerReadyResponse(ready=self.state.ready)

    async def ModelReady(self, request):
        config = self.state.config
        if request.name != config.model_name:
            raise ModelNotFound(request.name, [config.model_name])
        return self.m.ModelReadyResponse(ready=self.state.ready)

    async def ServerMetadata(self, request):
        return self.m.ServerMetadataResponse(**inference.server_metadata(extensions=[]))

    async def ModelMetadata(self, request):
        metadata = inference.model_metadata(self.state, request.name)
        tensor = self.m.ModelMetadataResponse.TensorMetadata
        return self.m.ModelMetadataResponse(
            name=metadata["name"], platform=metadata["platform"],
            inputs=[tensor(**spec) for spec in metadata["inputs"]],
            outputs=[tensor(**spec) for spec in metadata["outputs"]])

    async def ModelInfer(self, request):
        self.state.check_model(request.model_name)
        parsed = parse_infer_request(request)
        response = await inference.infer(self.state, request.model_name, parsed)
        if self.state.predictor is not None and self.state.predictor.is_small(parsed.texts):
            return encode_infer_response(response, parsed.raw)
        return await asyncio.to_thread(encode_infer_response, response, parsed.raw)


RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer")


def generic_handler(state: "ServerState") -> "grpc.GenericRpcHandler":
    """Every RPC of inference.GRPCInferenceService, answered by `Servicer(state)`."""
    import grpc

    servicer = Servicer(state)
    m = messages()

    def wrap(name: str, method: Callable[[Any], Awaitable[Any]]):
        route = f"grpc_{name}"

        async def handler(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await method(request)
            except RequestError as exc:
                code, message = status_for(exc), exc.message
            except Exception as exc:  # a bug or a model failure: answer, log, keep serving
                log.error("%s failed: %s\n%s", route, exc, traceback.format_exc())
                code, message = grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
            finally:
                state.metrics.requests.labels(route, code.name).inc()
                state.metrics.latency.labels(route).observe(time.perf_counter() - started)
            await context.abort(code, message)

        return grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=getattr(m, f"{name}Request").FromString,
            response_serializer=getattr(m, f"{name}Response").SerializeToString)

    return grpc.method_handlers_generic_handler(SERVICE, {name: wrap(name, getattr(servicer, name)) for name in RPCS})


def receive_limit(state: "ServerState") -> int:
    return state.config.grpc_max_receive_message_length or state.config.max_request_bytes


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcBindError(RuntimeError):
    pass


async def start_server(state: "ServerState", host: str | None = None, port: int | None = None) -> "grpc.aio.Server":
    """Start gRPC on the running event loop (`--host`, `--grpc_port` unless given); GrpcBindError when the
    port cannot be bound."""
    import grpc

    config = state.config
    address = listen_address(config.host if host is None else host, config.grpc_port if port is None else port)
    # so_reuseport off: a second server on a port in use fails here instead of sharing the port.
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", receive_limit(state)),
                                      ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((generic_handler(state),))
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise GrpcBindError(f"cannot serve gRPC on {address}: {exc}") from None
    if not bound:
        raise GrpcBindError(f"cannot serve gRPC on {address}")
    await server.start()
    server.bound_port = bound  # type: ignore[attr-defined]  # the port, when 0 asked for any
    log.info("gRPC (%s) listening on %s, max message %d bytes", SERVICE, listen_address(
        config.host if host is None else host, bound), receive_limit(state))
    return server
