"""Open Inference Protocol (V2) over gRPC (`inference.GRPCInferenceService`, OIP's inference_grpc.md).

Runs only with `--grpc-endpoint HOST:PORT` (each check skips in one line otherwise); with `--endpoint`
too, the gRPC answers are also compared with the REST ones. Errors are gRPC status codes: OIP says the
status of each call is its gRPC status; the codes are gRPC's canonical ones (INVALID_ARGUMENT: the
request is wrong; NOT_FOUND: no such model; RESOURCE_EXHAUSTED: a message over the receive limit).
After each error the endpoint must still answer ServerReady and a good ModelInfer. A check that fails
where a `grpc-*` entry of conformance.profiles.DIVERGENCES names the outcome (status code and details, or
the response) is a known divergence under that entry's profile (`--profile kserve`), a failure under strict.
"""

from __future__ import annotations

import contextlib
import math
from types import SimpleNamespace

import pytest

from conformance import semantics
from conformance.checks import clause, level, protocol
from conformance.profiles import GrpcOutcome, diverge_or_fail
from conformance.grpc_client import GrpcClient, Malformed, infer_request, message, output_values, raw_bytes_elements
from conformance.target import Target, new_request_id, v2_request

pytestmark = protocol("v2")

SIZE_MARGIN = 64 * 1024  # the oversized message is the receive limit plus this much


@pytest.fixture(scope="session")
def grpc_target(request, pytestconfig):
    """The gRPC endpoint, the model (name, task, texts) and, with --endpoint, its REST side. Offline (no
    --endpoint, no --grpc-endpoint, --serve-with builtin): one built-in server with gRPC on, serving the
    first target's tiny model with the receive limit of --grpc-max-message."""
    from conformance.conftest import grpc_spec, target_specs

    spec = target_specs(pytestconfig)[0]
    grpc = grpc_spec(pytestconfig)
    address = grpc.address
    with contextlib.ExitStack() as stack:
        if not address:
            if grpc.skip_reason:
                pytest.skip(grpc.skip_reason)
            if spec.endpoint is not None or pytestconfig.getoption("--serve-with") != "builtin":
                pytest.skip("no --grpc-endpoint: the OIP gRPC checks need one "
                            "(offline, only --serve-with builtin serves gRPC itself)")
            url, address = stack.enter_context(_builtin_with_grpc(request, pytestconfig, spec))
            spec = _with_endpoint(spec, url)
        yield from _grpc_target(pytestconfig, spec, address, grpc.authority)


@contextlib.contextmanager
def _builtin_with_grpc(request, pytestconfig, spec):
    from workbench.tasks import MODE_FLAGS
    from workbench.testsupport.servers import free_port, served

    model_dir = request.getfixturevalue("tiny_model_dir")(spec.task)
    port = free_port()
    with served(model_dir, *MODE_FLAGS[spec.mode], "--grpc_port", str(port), "--grpc_max_receive_message_length",
                str(pytestconfig.getoption("--grpc-max-message")), model_name=spec.model_name) as url:
        yield url, f"127.0.0.1:{port}"


def _with_endpoint(spec, url):
    from dataclasses import replace

    return replace(spec, endpoint=url)


def _grpc_target(pytestconfig, spec, address, authority=None):
    from conformance.client import ConformanceClient
    from conformance.conftest import request_timeout

    timeout = request_timeout(pytestconfig)
    client = GrpcClient(address, timeout=timeout, authority=authority)
    input_name = spec.input_name
    if spec.endpoint is None:  # no REST preflight told the input's name: ask the gRPC metadata
        try:
            metadata = client.call("ModelMetadata", message("ModelMetadataRequest", name=spec.model_name))
            names = [t.name for t in metadata.inputs if t.datatype == "BYTES"]
            input_name = names[0] if names else input_name
        except Exception:  # the metadata check says what is wrong with it
            pass
    model = Target(spec.id, spec.endpoint or "", spec.model_name, spec.task, spec.mode, spec.protocols, "strict",
                   host_header=spec.host_header, input_name=input_name,
                   mask_token=pytestconfig.getoption("--mask-token"))
    rest = None
    if spec.endpoint is not None:
        rest = ConformanceClient(spec.endpoint, host_header=spec.host_header, timeout=timeout)
    yield SimpleNamespace(address=address, client=client, model=model, rest=rest,
                          max_message=pytestconfig.getoption("--grpc-max-message"),
                          profile=pytestconfig.getoption("--profile"))
    client.close()
    if rest is not None:
        rest.close()


def _code(exc) -> str:
    return exc.code().name if hasattr(exc, "code") else type(exc).__name__


def _call(grpc_target, rpc: str, request=None):
    import grpc

    try:
        return grpc_target.client.call(rpc, request)
    except grpc.RpcError as exc:
        raise AssertionError(f"{rpc} answered {_code(exc)}: {exc.details()}") from None


def _infer(grpc_target, texts=None, **kwargs):
    """A good ModelInfer of text; an error status fails the check (or is the profile's known divergence)."""
    model = grpc_target.model
    request = infer_request(model.model_name, texts or model.texts(2), input_name=model.input_name, **kwargs)
    outcome = GrpcOutcome.of_call(grpc_target.client, "ModelInfer", request)
    if outcome.code != "OK":
        diverge_or_fail(grpc_target.profile, "grpc-infer-text", outcome,
                        f"ModelInfer answered {outcome.code}: {outcome.details}")
    return outcome.response


def _values(response, index: int) -> list:
    try:
        return output_values(response, index)
    except Malformed as exc:
        raise AssertionError(str(exc)) from None


def _expect_status(grpc_target, rpc: str, request, wanted: str, what: str, divergence: str | None = None) -> None:
    """`rpc` answers status `wanted` and the endpoint keeps serving; another answer fails the check, or is
    the known divergence `divergence` of the profile."""
    _infers_at_all(grpc_target)  # before the bad request
    outcome = GrpcOutcome.of_call(grpc_target.client, rpc, request)
    _expect_still_serving(grpc_target, what)
    if outcome.code == wanted:
        return
    observed = (f"{what}: expected {wanted}, " +
                ("the call succeeded" if outcome.code == "OK" else f"got {outcome.code}: {outcome.details}"))
    if divergence is None:
        pytest.fail(observed, pytrace=False)
    diverge_or_fail(grpc_target.profile, divergence, outcome, observed)


def _good_infer(grpc_target):
    model = grpc_target.model
    return grpc_target.client.call("ModelInfer", infer_request(model.model_name, model.texts(1),
                                                               input_name=model.input_name))


def _infers_at_all(grpc_target) -> bool:
    """Whether a good ModelInfer works (asked once): after an error, a good inference is asked for only
    from an endpoint that could infer before, so one broken inference path fails its own checks only."""
    import grpc

    if not hasattr(grpc_target, "infers"):
        try:
            grpc_target.infers = len(_good_infer(grpc_target).outputs) > 0
        except grpc.RpcError:
            grpc_target.infers = False
    return grpc_target.infers


def _expect_still_serving(grpc_target, after: str) -> None:
    import grpc

    try:
        ready = grpc_target.client.call("ServerReady")
        model_ready = grpc_target.client.call("ModelReady", message("ModelReadyRequest",
                                                                    name=grpc_target.model.model_name))
        response = _good_infer(grpc_target) if _infers_at_all(grpc_target) else None
    except grpc.RpcError as exc:
        raise AssertionError(f"endpoint broken after {after}: {_code(exc)}: {exc.details()}") from None
    assert ready.ready and model_ready.ready, f"endpoint (or model) not ready after {after}"
    assert response is None or len(response.outputs) > 0, f"endpoint answers no outputs after {after}"


# --- health and metadata -----------------------------------------------------------------------

@level("protocol")
@clause("OIP-gRPC §Health: ServerLive -> ServerLiveResponse{live: true} when the server can receive and respond")
def test_grpc_server_live(grpc_target):
    """ServerLive answers live=true."""
    assert _call(grpc_target, "ServerLive").live is True, "ServerLive answered live=false"


@level("protocol")
@clause("OIP-gRPC §Health: ServerReady -> ServerReadyResponse{ready: true} when all models are ready")
def test_grpc_server_ready(grpc_target):
    """ServerReady answers ready=true."""
    assert _call(grpc_target, "ServerReady").ready is True, "ServerReady answered ready=false"


@level("protocol")
@clause("OIP-gRPC §Health: ModelReady{name} -> ModelReadyResponse{ready: true} for a model ready for inferencing")
def test_grpc_model_ready(grpc_target):
    """ModelReady of the served model answers ready=true."""
    response = _call(grpc_target, "ModelReady", message("ModelReadyRequest", name=grpc_target.model.model_name))
    assert response.ready is True, "ModelReady answered ready=false"


@level("protocol")
@clause("OIP-gRPC §Server Metadata: ServerMetadataResponse{name, version, extensions}")
def test_grpc_server_metadata(grpc_target):
    """ServerMetadata gives a name and a version."""
    response = _call(grpc_target, "ServerMetadata")
    assert response.name, "ServerMetadata: empty name"
    assert response.version, "ServerMetadata: empty version"


@level("protocol")
@clause("OIP-gRPC §Model Metadata: ModelMetadataResponse{name, platform, inputs, outputs} (TensorMetadata: "
        "name, datatype, shape; -1 = variable)")
def test_grpc_model_metadata(grpc_target):
    """ModelMetadata names the model and describes its input and output tensors."""
    model = grpc_target.model
    response = _call(grpc_target, "ModelMetadata", message("ModelMetadataRequest", name=model.model_name))
    assert response.name == model.model_name, f"name {response.name!r} != {model.model_name!r}"
    # platform: a proto3 string is never absent; an empty one (KServe, MLServer) passes, as REST's "" does
    if not (len(response.inputs) and len(response.outputs)):
        diverge_or_fail(grpc_target.profile, "grpc-model-metadata-tensors", GrpcOutcome("OK", response=response),
                        f"ModelMetadata lists {len(response.inputs)} inputs and {len(response.outputs)} outputs")
    for where, tensor in [*(("inputs", t) for t in response.inputs), *(("outputs", t) for t in response.outputs)]:
        assert tensor.name, f"{where}: a tensor without a name"
        assert tensor.datatype in semantics.DATATYPES, f"{where} {tensor.name}: datatype {tensor.datatype!r}"
        assert all(dim >= -1 for dim in tensor.shape), f"{where} {tensor.name}: shape {list(tensor.shape)}"


# --- inference ---------------------------------------------------------------------------------

@level("protocol")
@clause("OIP-gRPC §Inference: ModelInfer with typed contents (InferTensorContents.bytes_contents) -> "
        "ModelInferResponse{model_name, outputs}")
def test_grpc_infer_typed_bytes(grpc_target):
    """ModelInfer with bytes_contents answers the model's name and outputs."""
    response = _infer(grpc_target)
    assert response.model_name == grpc_target.model.model_name, \
        f"model_name {response.model_name!r} != {grpc_target.model.model_name!r}"
    assert len(response.outputs) > 0, "ModelInfer answered no outputs"


@level("protocol")
@clause("OIP-gRPC §Inference: ModelInferResponse.outputs[] each with name, datatype, shape and data "
        "(contents of the datatype's field, or raw_output_contents) whose element count is the product of shape")
@pytest.mark.parametrize("form", ["typed", "raw"])
def test_grpc_infer_outputs_well_formed(grpc_target, form):
    """Every output has a name, an OIP datatype, a shape and as many elements as the shape says."""
    response = _infer(grpc_target, raw=form == "raw")
    for index in range(len(response.outputs)):
        _values(response, index)
    assert len(response.outputs) > 0, "ModelInfer answered no outputs"


@level("protocol")
@clause("OIP-gRPC §Inference: ModelInferRequest.raw_input_contents (BYTES: 4-byte little-endian length, then "
        "the bytes, per element) is accepted in place of contents")
def test_grpc_infer_raw_input_accepted(grpc_target):
    """ModelInfer with raw_input_contents is answered with outputs."""
    response = _infer(grpc_target, raw=True)
    assert len(response.outputs) > 0, "ModelInfer (raw input) answered no outputs"


@level("kserve")
@clause("OIP-gRPC §Inference: raw in -> raw out; KServe (and Triton) answer a raw_input_contents request in "
        "raw_output_contents, one buffer per output")
def test_grpc_infer_raw_in_raw_out(grpc_target):
    """A raw request is answered in raw_output_contents, one buffer per output."""
    response = _infer(grpc_target, raw=True)
    assert len(response.raw_output_contents) == len(response.outputs), \
        f"raw request: {len(response.raw_output_contents)} raw_output_contents for {len(response.outputs)} outputs"


@level("protocol")
@clause("OIP-gRPC §Inference: ModelInferResponse.id is the id of the inference request if one was specified")
@pytest.mark.parametrize("form", ["typed", "raw"])
def test_grpc_infer_echoes_id(grpc_target, form):
    """The request's id comes back unchanged."""
    request_id = new_request_id()
    response = _infer(grpc_target, raw=form == "raw", request_id=request_id)
    assert response.id == request_id, f"sent id {request_id!r}, response id {response.id!r}"


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-5, abs_tol=1e-6)
    return a == b


@level("protocol")
@clause("OIP-gRPC §GRPC: the gRPC API is the HTTP/REST API's; the same request answers the same outputs over both")
@pytest.mark.parametrize("form", ["typed", "raw"])
def test_grpc_answers_equal_rest(grpc_target, form):
    """gRPC and REST answer the same request with the same outputs."""
    if grpc_target.rest is None:
        pytest.skip("needs --endpoint too to compare the gRPC answer with the REST one")
    if "v2" not in grpc_target.model.protocols:
        pytest.skip("compares with V2 REST, not checked (--protocol)")
    model = grpc_target.model
    texts = model.texts(2)
    answer = grpc_target.rest.recording([]).post(model.v2_infer_path,
                                                 json_body=v2_request(texts, input_name=model.input_name))
    assert answer.status_code == 200, f"REST infer answered {answer.status_code}: {answer.text[:200]}"
    body = answer.json()
    response = _infer(grpc_target, texts, raw=form == "raw")
    rest_outputs = {t["name"]: t for t in body.get("outputs") or []}
    grpc_names = [t.name for t in response.outputs]
    assert sorted(grpc_names) == sorted(rest_outputs), f"outputs: gRPC {grpc_names}, REST {sorted(rest_outputs)}"
    for index, tensor in enumerate(response.outputs):
        rest = rest_outputs[tensor.name]
        assert tensor.datatype == rest["datatype"], \
            f"{tensor.name}: datatype gRPC {tensor.datatype}, REST {rest['datatype']}"
        assert list(tensor.shape) == list(rest["shape"]), \
            f"{tensor.name}: shape gRPC {list(tensor.shape)}, REST {rest['shape']}"
        values, expected = _values(response, index), semantics.flatten(rest["data"])
        differ = [i for i, (a, b) in enumerate(zip(values, expected)) if not _same(a, b)]
        first = differ[0] if differ else None
        assert len(values) == len(expected) and not differ, \
            f"{tensor.name}: gRPC and REST data differ ({len(values)} vs {len(expected)} elements; first difference " \
            f"at {first}: gRPC {values[first] if differ else values[:3]!r}, " \
            f"REST {expected[first] if differ else expected[:3]!r})"


# --- errors ------------------------------------------------------------------------------------

@level("protocol")
@clause("OIP-gRPC §Inference: a tensor whose datatype the model does not take is refused with INVALID_ARGUMENT")
def test_grpc_wrong_datatype_invalid_argument(grpc_target):
    """An INT64 text input is refused with INVALID_ARGUMENT; the endpoint keeps serving."""
    model = grpc_target.model
    request = message("ModelInferRequest", model_name=model.model_name)
    request.inputs.add(name=model.input_name, datatype="INT64", shape=[2]).contents.int64_contents.extend([1, 2])
    _expect_status(grpc_target, "ModelInfer", request, "INVALID_ARGUMENT", "an INT64 text input",
                   divergence="grpc-wrong-datatype")


@level("protocol")
@clause("OIP-gRPC §Inference: contents whose element count is not the product of shape -> INVALID_ARGUMENT")
@pytest.mark.parametrize("form", ["typed", "raw"])
def test_grpc_shape_data_mismatch_invalid_argument(grpc_target, form):
    """Shape [3] with two elements is refused with INVALID_ARGUMENT; the endpoint keeps serving."""
    model = grpc_target.model
    request = infer_request(model.model_name, model.texts(2), input_name=model.input_name, raw=form == "raw")
    request.inputs[0].shape[:] = [3]
    _expect_status(grpc_target, "ModelInfer", request, "INVALID_ARGUMENT", f"shape [3] with 2 {form} elements",
                   divergence="grpc-shape-data-mismatch")


@level("protocol")
@clause("OIP-gRPC §Inference: raw_input_contents is used instead of contents; a request with both -> INVALID_ARGUMENT")
def test_grpc_contents_and_raw_invalid_argument(grpc_target):
    """Both contents and raw_input_contents is refused with INVALID_ARGUMENT; the endpoint keeps serving."""
    model = grpc_target.model
    texts = model.texts(1)
    request = infer_request(model.model_name, texts, input_name=model.input_name)
    request.raw_input_contents.append(raw_bytes_elements(texts))
    _expect_status(grpc_target, "ModelInfer", request, "INVALID_ARGUMENT", "both contents and raw_input_contents")


@level("protocol")
@clause("OIP-gRPC §Inference: ModelInfer for a model the server does not have -> NOT_FOUND")
def test_grpc_unknown_model_infer_not_found(grpc_target):
    """ModelInfer of an unknown model answers NOT_FOUND; the endpoint keeps serving."""
    request = infer_request("conformance-no-such-model", grpc_target.model.texts(1),
                            input_name=grpc_target.model.input_name)
    _expect_status(grpc_target, "ModelInfer", request, "NOT_FOUND", "ModelInfer of an unknown model")


@level("protocol")
@clause("OIP-gRPC §Model Metadata: ModelMetadata for a model the server does not have -> NOT_FOUND")
def test_grpc_unknown_model_metadata_not_found(grpc_target):
    """ModelMetadata of an unknown model answers NOT_FOUND; the endpoint keeps serving."""
    request = message("ModelMetadataRequest", name="conformance-no-such-model")
    _expect_status(grpc_target, "ModelMetadata", request, "NOT_FOUND", "ModelMetadata of an unknown model")


@level("protocol")
@clause("OIP-gRPC §GRPC: a message over the server's receive limit (--grpc-max-message, default gRPC's 4 MiB) "
        "-> RESOURCE_EXHAUSTED")
def test_grpc_over_size_limit_resource_exhausted(grpc_target):
    """A good request padded, in a string parameter, to the limit plus 64 KiB (a server that accepted it
    would only run two short texts)."""
    model = grpc_target.model
    request = infer_request(model.model_name, model.texts(1), input_name=model.input_name)
    request.parameters["conformance_padding"].string_param = "x" * (grpc_target.max_message + SIZE_MARGIN)
    _expect_status(grpc_target, "ModelInfer", request, "RESOURCE_EXHAUSTED",
                   f"a message of {request.ByteSize()} bytes (limit {grpc_target.max_message}; a server with "
                   f"a higher receive limit: pass it as --grpc-max-message)")
