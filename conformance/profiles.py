"""Known divergences per server profile: the one list of where servers are known to answer otherwise.

A check that fails calls `diverge_or_fail(profile, key, ...)`: when the chosen profile knows this exact
divergence (same key, and the observed response matches what that server is known to do), the check is
reported as a *known divergence* (`pytest.xfail` with the reason); otherwise it fails. Under the `strict`
profile every divergence fails.

- `POINTS`: every key a check may name, with what is checked there. A key outside it is a programming
  error (`diverge_or_fail` raises), so a typo cannot turn a divergence into a silent failure or pass.
- `DIVERGENCES`: the known ones. The `kserve` entries are also the list of where our predictor differs
  from KServe's real Hugging Face runtime *on purpose* (we answer 400/404 `{"error"}` where it answers
  422/500 or accepts a bad request): each carries the `Probe` that shows it, and tests/kserve_runtime sends
  every probe to the real runtime (which must answer as `matches` says) and to our predictor (which must
  not). The `kserve` profile is this list; nothing else defines it.
- gRPC divergences (keys `grpc-*`) carry a `GrpcProbe` (an rpc and a plain description of its request) and
  are judged on a `GrpcOutcome` (the status code and details, and the response when the call succeeded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Union

import httpx
import pytest

PROFILES = ("strict", "kserve", "mlserver", "triton")

POINTS: dict[str, str] = {
    "v2-malformed-json": "V2 infer with a body that is not JSON",
    "v2-missing-inputs": "V2 infer without 'inputs'",
    "v2-wrong-datatype": "V2 infer with an INT64 input that carries strings",
    "v2-shape-data-mismatch": "V2 infer whose shape says 3 elements and carries 1",
    "v2-unknown-model": "V2 infer / metadata of a model that is not served",
    "v1-malformed-json": "V1 predict with a body that is not JSON",
    "v1-missing-instances": "V1 predict without 'instances'",
    "v1-non-json-content-type": "V1 predict with a JSON body sent as a form",
    "v1-unknown-model": "V1 predict / readiness of a model that is not served",
    "v2-model-metadata-tensors": "V2 model metadata lists the model's input and output tensors",
    "v2-health-body": "V2 health probes answer {\"live\"|\"ready\": true}",
    "v2-model-ready-body": "V2 model readiness answers {\"name\", \"ready\": true}",
    "hf-bad-parameters": "HF Inference API: a bad parameter",
    "hf-unknown-model": "HF Inference API: a model that is not served",
    "hf-entity-route": "HF Inference API: POST /models/{name} is served (a token classification model)",
    "v2-embedding-fp32": "text_embedding V2 output-0 is FP32 (the model's precision)",
    "openai-embeddings-object": "OpenAI embeddings: the response's object is \"list\"",
    "openai-default-encoding-format": "OpenAI embeddings without encoding_format answer floats (its default)",
    "openai-token-ids": "OpenAI embeddings: token-id list input is refused with a 4xx OpenAI error",
    "openai-malformed-json": "OpenAI embeddings: a body that is not JSON gets a 4xx OpenAI error",
    "openai-missing-input": "OpenAI embeddings: a body without 'input' gets a 4xx OpenAI error",
    "openai-unknown-model": "OpenAI embeddings: a model that is not served gets 404 with an OpenAI error",
    "grpc-infer-text": "gRPC ModelInfer of BYTES text (typed contents or raw_input_contents) answers outputs",
    "grpc-wrong-datatype": "gRPC ModelInfer with an INT64 text input -> INVALID_ARGUMENT",
    "grpc-shape-data-mismatch": "gRPC ModelInfer whose shape says 3 elements and carries 2 -> INVALID_ARGUMENT",
    "grpc-model-metadata-tensors": "gRPC ModelMetadata lists the model's input and output tensors",
}


@dataclass(frozen=True)
class Probe:
    """The request that shows a divergence. `{model}` in the path (and the literal `{model}` in the body) is
    the served model's name. `task`: the task the probed server must serve (None: any)."""
    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    task: str | None = None

    def send(self, client: httpx.Client, base_url: str, model_name: str = "model") -> httpx.Response:
        body = self.body.replace(b"{model}", model_name.encode()) if self.body is not None else None
        return client.request(self.method, base_url + self.path.format(model=model_name), content=body,
                              headers={"Content-Type": self.content_type} if self.body is not None else {})

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class GrpcOutcome:
    """What a gRPC call answered: `code` is the status name ("OK" when it succeeded, with `response`)."""
    code: str
    details: str = ""
    response: Any = None  # the response message (conformance.grpc_client's classes) when code == "OK"

    @classmethod
    def of_call(cls, client, rpc: str, request) -> "GrpcOutcome":
        """Call `rpc` on a conformance.grpc_client.GrpcClient and keep its answer or its status."""
        import grpc

        try:
            return cls("OK", response=client.call(rpc, request))
        except grpc.RpcError as exc:
            return cls(exc.code().name, exc.details() or "")


Observed = Union[httpx.Response, GrpcOutcome, None]  # what a divergence's `matches` judges


@dataclass(frozen=True)
class GrpcProbe:
    """The gRPC call that shows a divergence: `rpc` ModelInfer (one input `input_name` holding `texts` as
    BYTES, or `ints` as INT64; `shape` defaults to the element count; `raw`: in raw_input_contents) or
    ModelMetadata (of the served model)."""
    rpc: str
    texts: tuple[str, ...] = ()
    ints: tuple[int, ...] = ()
    shape: tuple[int, ...] | None = None
    raw: bool = False
    input_name: str = "text"
    task: str | None = None  # as Probe.task: None, any model shows it

    def request(self, model_name: str = "model"):
        from conformance.grpc_client import infer_request, message

        if self.rpc == "ModelMetadata":
            return message("ModelMetadataRequest", name=model_name)
        if self.rpc != "ModelInfer":
            raise ValueError(f"GrpcProbe: rpc {self.rpc!r} is not ModelInfer or ModelMetadata")
        if self.ints:
            request = message("ModelInferRequest", model_name=model_name)
            tensor = request.inputs.add(name=self.input_name, datatype="INT64", shape=[len(self.ints)])
            tensor.contents.int64_contents.extend(self.ints)
        else:
            request = infer_request(model_name, list(self.texts), input_name=self.input_name, raw=self.raw)
        if self.shape is not None:
            request.inputs[0].shape[:] = list(self.shape)
        return request

    def send(self, client, model_name: str = "model") -> GrpcOutcome:
        """Send it with a conformance.grpc_client.GrpcClient."""
        return GrpcOutcome.of_call(client, self.rpc, self.request(model_name))

    @property
    def label(self) -> str:
        return f"gRPC {self.rpc}"


@dataclass(frozen=True)
class GrpcStatus:
    """Matches a gRPC outcome with status `code` whose details contain `details`."""
    code: str
    details: str = ""

    def __call__(self, outcome: Observed) -> bool:
        return isinstance(outcome, GrpcOutcome) and outcome.code == self.code and self.details in outcome.details


def _json(value) -> bytes:
    return json.dumps(value).encode()


def _status(*codes: int) -> Callable[[httpx.Response | None], bool]:
    return lambda response: response is not None and response.status_code in codes


def _empty_body(response: httpx.Response | None) -> bool:
    return response is not None and response.status_code == 200 and not response.content.strip()


def _body(response: httpx.Response | None) -> Any:
    try:
        return response.json() if response is not None else None
    except ValueError:
        return None


def _fp64_output(response: httpx.Response | None) -> bool:
    outputs = (_body(response) or {}).get("outputs") if response is not None and response.status_code == 200 else None
    return isinstance(outputs, list) and any(isinstance(t, dict) and t.get("name") == "output-0"
                                             and t.get("datatype") == "FP64" for t in outputs)


def _object_embedding(response: httpx.Response | None) -> bool:
    body = _body(response)
    return response is not None and response.status_code == 200 and isinstance(body, dict) \
        and body.get("object") == "embedding"


def _openai_500_saying(*words: str) -> Callable[[httpx.Response | None], bool]:
    """500 with an OpenAI error body whose message has every word (KServe wraps its own 4xx/501 errors)."""
    def matches(response: httpx.Response | None) -> bool:
        error = (_body(response) or {}).get("error") if response is not None and response.status_code == 500 else None
        message = error.get("message") if isinstance(error, dict) else None
        return isinstance(message, str) and all(word in message for word in words)
    return matches


def _fastapi_422(response: httpx.Response | None) -> bool:
    body = _body(response)
    return response is not None and response.status_code == 422 and isinstance(body, dict) and "detail" in body


def _plain_error(*codes: int) -> Callable[[httpx.Response | None], bool]:
    """A status in `codes` with KServe's plain `{"error": "..."}` instead of OpenAI's error object."""
    def matches(response: httpx.Response | None) -> bool:
        body = _body(response)
        return response is not None and response.status_code in codes and isinstance(body, dict) \
            and isinstance(body.get("error"), str)
    return matches


def _no_metadata_tensors(response: httpx.Response | None) -> bool:
    try:
        body = response.json() if response is not None and response.status_code == 200 else None
    except ValueError:
        return False
    return isinstance(body, dict) and not body.get("inputs") and not body.get("outputs")


def _grpc_no_metadata_tensors(outcome: Observed) -> bool:
    return (isinstance(outcome, GrpcOutcome) and outcome.code == "OK"
            and not outcome.response.inputs and not outcome.response.outputs)


@dataclass(frozen=True)
class Divergence:
    key: str
    profiles: tuple[str, ...]
    reason: str
    matches: Callable[[Observed], bool]
    probe: Probe | GrpcProbe | None = None  # required for the `kserve` profile: tests/kserve_runtime sends it


INFER = "/v2/models/{model}/infer"
# KServe 0.21's gRPC ExceptionToStatusInterceptor answers every exception outside kserve.errors with this.
KSERVE_INTERNAL = GrpcStatus("INTERNAL", "Internal server error")
PREDICT = "/v1/models/{model}:predict"
EMBEDDINGS = "/openai/v1/embeddings"
TEXT_EMBEDDING = "text_embedding"  # workbench.tasks.TEXT_EMBEDDING (profiles imports nothing of workbench)


def _embeddings_probe(body: dict | bytes) -> Probe:
    return Probe("POST", EMBEDDINGS, body if isinstance(body, bytes) else _json(body), task=TEXT_EMBEDDING)

DIVERGENCES: list[Divergence] = [
    Divergence("v2-malformed-json", ("kserve",),
               "KServe validates V2 bodies with FastAPI/pydantic: malformed JSON gets 422 {\"detail\": [...]}",
               _status(422), Probe("POST", INFER, b'{"inputs": [{"name": "text", ')),
    Divergence("v2-malformed-json", ("mlserver",), "MLServer answers request validation errors with 422",
               _status(422)),
    Divergence("v2-missing-inputs", ("kserve",),
               "a V2 body without 'inputs' fails pydantic validation: 422 {\"detail\": [...]}", _status(422),
               Probe("POST", INFER, _json({"id": "no-inputs"}))),
    Divergence("v2-missing-inputs", ("mlserver",),
               "a V2 body without 'inputs' fails pydantic validation: 422 {\"detail\": [...]}", _status(422)),
    Divergence("v2-wrong-datatype", ("kserve",),
               "KServe's HF runtime does not check the input datatype; the tokenizer/numpy conversion fails: 500",
               _status(500),
               Probe("POST", INFER, _json({"inputs": [{"name": "text", "shape": [1], "datatype": "INT64",
                                                        "data": ["Hello"]}]}))),
    Divergence("v2-wrong-datatype", ("mlserver",), "MLServer answers datatype validation errors with 422",
               _status(422)),
    Divergence("v2-shape-data-mismatch", ("kserve",),
               "KServe's HF runtime ignores the input shape and answers 200", _status(200),
               Probe("POST", INFER, _json({"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES",
                                                        "data": ["Hello"]}]}))),
    Divergence("v1-missing-instances", ("kserve",),
               "KServe's get_predict_input reads payload['instances'] unguarded: 500 KeyError", _status(500),
               Probe("POST", PREDICT, _json({"texts": ["Hello"]}))),
    Divergence("v1-non-json-content-type", ("kserve",),
               "KServe decodes a body without a JSON content type as raw bytes: a confusing 500", _status(500),
               Probe("POST", PREDICT, _json({"instances": ["Hello"]}), "application/x-www-form-urlencoded")),
    Divergence("v2-model-metadata-tensors", ("kserve",),
               "KServe's Model.get_input_types/get_output_types default to []: metadata inputs/outputs are empty",
               _no_metadata_tensors, Probe("GET", "/v2/models/{model}")),
    Divergence("hf-entity-route", ("kserve", "mlserver", "triton"),
               "POST /models/{name} (the HF Inference API's entity route) is a workbench extension; other servers "
               "answer 404/405", _status(404, 405), Probe("POST", "/models/{model}", _json({"inputs": "Hello"}))),
    Divergence("v2-embedding-fp32", ("kserve",),
               "KServe's runtime turns the float32 embeddings into Python floats (tolist) and V2 labels them FP64: "
               "twice the bytes, no more precision", _fp64_output,
               Probe("POST", INFER, _json({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                                        "data": ["Hello"]}]}), task=TEXT_EMBEDDING)),
    Divergence("openai-embeddings-object", ("kserve",),
               "KServe's create_embedding answers object \"embedding\" for the whole response (OpenAI: \"list\")",
               _object_embedding,
               _embeddings_probe({"model": "{model}", "input": ["Hello"], "encoding_format": "float"})),
    Divergence("openai-default-encoding-format", ("kserve",),
               "KServe's EmbeddingRequest has no encoding_format unless the body sends one: 500 \"'EmbeddingRequest' "
               "object has no attribute 'encoding_format'\"", _openai_500_saying("encoding_format"),
               _embeddings_probe({"model": "{model}", "input": ["Hello"]})),
    Divergence("openai-token-ids", ("kserve",),
               "KServe refuses token lists with a clear message but its own try/except turns the 501 into 500",
               _openai_500_saying("token lists"),
               _embeddings_probe({"model": "{model}", "input": [[101, 7592, 102]], "encoding_format": "float"})),
    Divergence("openai-malformed-json", ("kserve",),
               "KServe's OpenAI routes answer malformed JSON with FastAPI's 422 {\"detail\": [...]}", _fastapi_422,
               _embeddings_probe(b'{"model": "{model}", "input": ')),
    Divergence("openai-missing-input", ("kserve",),
               "KServe reads request.input unguarded: 500 {\"error\": \"AttributeError : ... no attribute 'input'\"}",
               _plain_error(500), _embeddings_probe({"model": "{model}", "encoding_format": "float"})),
    Divergence("openai-unknown-model", ("kserve",),
               "KServe answers an unknown model on the OpenAI route with its V1/V2 body: 404 {\"error\": \"...\"}",
               _plain_error(404),
               _embeddings_probe({"model": "no-such-model", "input": ["Hello"], "encoding_format": "float"})),
    Divergence("grpc-infer-text", ("kserve",),
               "KServe's get_predict_input passes only str BYTES through; gRPC bytes_contents/raw elements are bytes, "
               "so it hands the tokenizer a numpy array of bytes, whose ValueError the interceptor answers INTERNAL",
               KSERVE_INTERNAL, GrpcProbe("ModelInfer", texts=("Hello world",))),
    Divergence("grpc-wrong-datatype", ("kserve",),
               "KServe's HF runtime does not check the input datatype; the tokenizer's ValueError on an int array "
               "is answered INTERNAL", KSERVE_INTERNAL, GrpcProbe("ModelInfer", ints=(1, 2))),
    Divergence("grpc-shape-data-mismatch", ("kserve",),
               "KServe's InferInput.as_numpy reshapes the data to the shape: numpy's ValueError is answered INTERNAL",
               KSERVE_INTERNAL, GrpcProbe("ModelInfer", texts=("Hello", "world"), shape=(3,))),
    Divergence("grpc-model-metadata-tensors", ("kserve",),
               "KServe's Model.get_input_types/get_output_types default to []: gRPC metadata inputs/outputs are empty",
               _grpc_no_metadata_tensors, GrpcProbe("ModelMetadata")),
    Divergence("v2-health-body", ("mlserver", "triton"),
               "MLServer and Triton answer health probes with an empty body (the status code is normative)",
               _empty_body),
    Divergence("v2-model-ready-body", ("mlserver", "triton"),
               "MLServer and Triton answer model-ready probes with an empty body (the status code is normative)",
               _empty_body),
]

for _divergence in DIVERGENCES:  # import-time: the list is data, and a bad entry must not wait for a run
    assert _divergence.key in POINTS, f"divergence {_divergence.key!r} is not in POINTS"
    assert set(_divergence.profiles) <= set(PROFILES) - {"strict"}, f"{_divergence.key}: bad profiles"
    assert "kserve" not in _divergence.profiles or _divergence.probe is not None, \
        f"{_divergence.key}: a kserve divergence needs the probe that shows it on the real runtime"
    assert _divergence.probe is None or isinstance(_divergence.probe, GrpcProbe) == _divergence.key.startswith(
        "grpc-"), f"{_divergence.key}: grpc-* keys take a GrpcProbe (and are judged on a GrpcOutcome), others a Probe"


def known_divergence(profile: str, key: str, response: Observed) -> str | None:
    """The reason when `profile` knows divergence `key` and the response matches it, else None."""
    if profile == "strict":
        return None
    for divergence in DIVERGENCES:
        if divergence.key == key and profile in divergence.profiles and divergence.matches(response):
            return divergence.reason
    return None


def diverge_or_fail(profile: str, key: str, response: Observed, message: str) -> None:
    """xfail with the reason when the divergence is known to `profile`; otherwise fail with `message`."""
    if key not in POINTS:
        raise KeyError(f"unknown divergence key {key!r}: add it to conformance.profiles.POINTS")
    reason = known_divergence(profile, key, response)
    if reason is not None:
        pytest.xfail(f"known divergence [{profile}] {key}: {reason} -- observed: {message}")
    pytest.fail(message, pytrace=False)


def profile_keys(profile: str) -> list[str]:
    return sorted({d.key for d in DIVERGENCES if profile in d.profiles})
