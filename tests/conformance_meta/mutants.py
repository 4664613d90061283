"""The mutant catalogue: deliberately wrong servers, as data and pure functions.

Each `Mutant` breaks exactly one behaviour a real server could get wrong. It names the upstreams
(task, mode, server flags) it applies to, and how it breaks them:

- `mutate(exchange) -> exchange`: changes one answer (status, JSON body, content type) given the request;
  it works on a copy, never on the proxy's state;
- `rewrite_request(exchange) -> request body`: changes the request before the real server sees it (a
  server that ignores a request field);
- `swap`: answers of concurrent inference requests are exchanged ("whole" body, or only the "content"
  with each request keeping its own id), done by the proxy (tests/conformance_meta/mutant_proxy.py).

`python -m tests.conformance_meta.mutation_score` runs the conformance suite against every mutant.
"""

from __future__ import annotations

import ast
import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

from workbench.tasks import MODE_FLAGS, TEXT_EMBEDDING

# --- upstreams ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """A real predictor the proxy sits in front of: the built-in server on a tiny model, or KServe's real
    runtime (`server="kserve-runtime"`, checked under `--profile kserve`: its known divergences are no kill)."""

    task: str
    mode: str
    offsets: bool = False  # served with --return_offsets_mapping
    server: str = "builtin"  # or "kserve-runtime"

    @property
    def id(self) -> str:
        return (f"{self.task}-{self.mode}" + ("+offsets" if self.offsets else "")
                + ("@kserve-runtime" if self.server == "kserve-runtime" else ""))

    @property
    def profile(self) -> str:
        return "kserve" if self.server == "kserve-runtime" else "strict"

    @property
    def server_flags(self) -> tuple[str, ...]:
        return (*MODE_FLAGS[self.mode], *(("--return_offsets_mapping",) if self.offsets else ()),
                *(("--task", self.task) if self.task == TEXT_EMBEDDING else ()))

    def suite_args(self) -> list[str]:
        return ["--task", self.task, "--mode", self.mode, *(["--return-offsets-mapping"] if self.offsets else []),
                "--profile", self.profile]


TD, TP, TL = (Upstream("token_classification", m) for m in ("default", "probabilities", "logits"))
SD, SP, SL = (Upstream("sequence_classification", m) for m in ("default", "probabilities", "logits"))
FD, FP, FL = (Upstream("fill_mask", m) for m in ("default", "probabilities", "logits"))
TDO = Upstream("token_classification", "default", offsets=True)
# text_embedding: KServe's real runtime (under --profile kserve) and our predictor (under strict: the checks
# where KServe is a known divergence, FP64 V2 embeddings, OpenAI error shapes, run only there)
EK = Upstream(TEXT_EMBEDDING, "default", server="kserve-runtime")
ED = Upstream(TEXT_EMBEDDING, "default")
UPSTREAMS = (TD, TP, TL, SD, SP, SL, FD, FP, FL, TDO, EK, ED)

# --- the exchange a mutant sees ------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    request: Any = None  # the request body as JSON (None: no body or not JSON)
    request_content_type: str = ""
    status: int = 200
    body: Any = None  # the answer as JSON (None: no body or not JSON)
    content_type: str | None = "application/json"


def is_v1_predict(path: str) -> bool:
    return path.startswith("/v1/models/") and path.endswith(":predict")


def is_v2_infer(path: str) -> bool:
    return path.startswith("/v2/models/") and path.endswith("/infer")


def is_inference(path: str) -> bool:
    return is_v1_predict(path) or is_v2_infer(path)


def is_openai_embeddings(path: str) -> bool:
    return path == "/openai/v1/embeddings"


def is_entities(path: str) -> bool:
    return path.startswith("/models/")


def is_model_metadata(path: str) -> bool:
    parts = path.strip("/").split("/")
    return len(parts) == 3 and parts[:2] == ["v2", "models"]


def ok(exchange: Exchange) -> bool:
    return exchange.status == 200 and exchange.body is not None


def v2_outputs(exchange: Exchange) -> list:
    body = exchange.body
    return [t for t in body.get("outputs") or [] if isinstance(t, dict)] if isinstance(body, dict) else []


def output0(exchange: Exchange) -> dict | None:
    return next((t for t in v2_outputs(exchange) if t.get("name") == "output-0"), None)


def wants_entities(exchange: Exchange) -> bool:
    request = exchange.request
    return isinstance(request, dict) and "aggregation_strategy" in (request.get("parameters") or {})


# --- score dicts (probabilities / logits), in V1 JSON and in V2 BYTES str(dict) form --------------

def _map_dict(scores: dict, fn: Callable[[dict[int, float]], dict[int, float]]) -> dict:
    keys_are_str = any(isinstance(k, str) for k in scores)
    values_are_str = any(isinstance(v, str) for v in scores.values())
    new = fn({int(k): float(v) for k, v in scores.items()})
    return {(str(k) if keys_are_str else k): (f"{v:.4f}" if values_are_str else v) for k, v in new.items()}


def _is_score_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(str(k).lstrip("-").isdigit() for k in value)


def _walk(value: Any, fn) -> Any:
    if isinstance(value, list):
        return [_walk(v, fn) for v in value]
    if _is_score_dict(value):
        return _map_dict(value, fn)
    return value


def map_score_dicts(exchange: Exchange, fn, *, v1: bool = True, v2: bool = True) -> Exchange:
    """Apply fn to every {label: score} dict of an inference answer (V1 predictions, V2 output-0 BYTES)."""
    if not ok(exchange) or not isinstance(exchange.body, dict):
        return exchange
    if v1 and is_v1_predict(exchange.path) and "predictions" in exchange.body:
        exchange.body["predictions"] = _walk(exchange.body["predictions"], fn)
    tensor = output0(exchange) if v2 and is_v2_infer(exchange.path) else None
    if tensor is not None and tensor.get("datatype") == "BYTES":
        data = []
        for element in tensor["data"]:
            parsed = ast.literal_eval(element) if isinstance(element, str) and element.startswith("{") else None
            data.append(repr(_map_dict(parsed, fn)) if _is_score_dict(parsed) else element)
        tensor["data"] = data
    return exchange


def each_score(fn: Callable[[float], float]):
    return lambda scores: {k: fn(v) for k, v in scores.items()}


def _softmax(scores: dict[int, float]) -> dict[int, float]:
    top = max(scores.values())
    exp = {k: math.exp(v - top) for k, v in scores.items()}
    total = sum(exp.values())
    return {k: round(v / total, 4) for k, v in exp.items()}


def _drop_top_label(scores: dict[int, float]) -> dict[int, float]:
    return {k: v for k, v in scores.items() if k != max(scores)}


# --- mutate functions (each gets a copy and returns it) ---------------------------------------------

def m_wrong_shape(ex):
    if ok(ex) and is_inference(ex.path):
        for tensor in v2_outputs(ex):
            tensor["shape"] = list(tensor["shape"][:-1]) + [tensor["shape"][-1] + 1]
    return ex


def m_wrong_datatype(ex):
    if ok(ex) and is_inference(ex.path):
        for tensor in v2_outputs(ex):
            if tensor.get("datatype") == "INT64":
                tensor["datatype"] = "BYTES"
    return ex


def _shift(value: Any, labels: int = 9) -> Any:
    if isinstance(value, list):
        return [_shift(v, labels) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return (value + 1) % labels
    return value


def m_swapped_labels(ex):
    if ok(ex) and is_inference(ex.path) and isinstance(ex.body, dict):
        if "predictions" in ex.body:
            ex.body["predictions"] = _shift(ex.body["predictions"])
        tensor = output0(ex)
        if tensor is not None and tensor.get("datatype") == "INT64":
            tensor["data"] = _shift(tensor["data"])
    return ex


def m_lost_id(ex):
    if ok(ex) and is_v2_infer(ex.path):
        ex.body["id"] = "not-the-request-id"
    return ex


def m_error_500(ex):
    if 400 <= ex.status < 500:
        ex.status, ex.body, ex.content_type = 500, {"error": "Internal Server Error"}, "application/json"
    return ex


def m_ragged_rows(ex):
    if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list):
        for row in ex.body["predictions"][1:]:
            if isinstance(row, list) and row and isinstance(row[0], list) and len(row[0]) > 1:
                row[0] = row[0][:-1]
    return ex


def m_v1_token_ids_not_nested(ex):
    if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list):
        ex.body["predictions"] = [row[0] if isinstance(row, list) and len(row) == 1 else row
                                  for row in ex.body["predictions"]]
    return ex


def m_v1_drops_last_prediction(ex):
    if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list) \
            and len(ex.body["predictions"]) > 1:
        ex.body["predictions"] = ex.body["predictions"][:-1]
    return ex


def _map_v1_predictions(fn):
    def mutate(ex):
        if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list) and not wants_entities(ex):
            ex.body["predictions"] = [fn(p) for p in ex.body["predictions"]]
        return ex
    return mutate


def _map_scores(fn, **where):
    return lambda ex: map_score_dicts(ex, fn, **where)


def m_v1_inputs_key_refused(ex):
    if is_v1_predict(ex.path) and isinstance(ex.request, dict) and "inputs" in ex.request:
        ex.status, ex.body = 400, {"error": "'instances' is required"}
    return ex


def m_v1_bare_string_refused(ex):
    if is_v1_predict(ex.path) and isinstance(ex.request, dict) and isinstance(ex.request.get("instances"), str):
        ex.status, ex.body = 400, {"error": "'instances' must be a list"}
    return ex


def m_v1_content_type_text(ex):
    if ok(ex) and is_v1_predict(ex.path):
        ex.content_type = "text/plain"
    return ex


def m_v2_output_renamed(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None:
        tensor["name"] = "output_0"
    return ex


def m_v2_empty_outputs(ex):
    if ok(ex) and is_v2_infer(ex.path):
        ex.body["outputs"] = []
    return ex


def m_v2_model_name_wrong(ex):
    if ok(ex) and is_v2_infer(ex.path):
        ex.body["model_name"] = "not-" + str(ex.body.get("model_name"))
    return ex


def m_v2_token_shape_flattened(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and len(tensor["shape"]) == 3:
        tensor["shape"] = [tensor["shape"][0], tensor["shape"][2]]
    return ex


def m_v2_int_as_fp64(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and tensor.get("datatype") == "INT64":
        tensor["datatype"] = "FP64"
    return ex


def m_v2_parameters_not_object(ex):
    if ok(ex) and is_v2_infer(ex.path):
        ex.body["parameters"] = "none"
    return ex


def m_v2_scores_as_numbers(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and tensor.get("datatype") == "BYTES":
        tensor["data"] = [str(max(float(v) for v in ast.literal_eval(e).values())) for e in tensor["data"]]
    return ex


def m_v2_fill_mask_scores_flattened(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and len(tensor["shape"]) == 3:
        batch, masks, vocab = tensor["shape"]
        tensor["shape"] = [batch, masks * vocab]
    return ex


def m_v2_first_text_only(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and tensor["shape"] and tensor["shape"][0] > 1:
        per_text = len(tensor["data"]) // tensor["shape"][0]
        tensor["data"] = tensor["data"][:per_text]
        tensor["shape"] = [1, *tensor["shape"][1:]]
    return ex


def m_v2_non_ascii_refused(ex):
    if is_v2_infer(ex.path) and isinstance(ex.request, dict):
        texts = [d for t in ex.request.get("inputs") or [] if isinstance(t, dict) for d in t.get("data") or []]
        if any(isinstance(text, str) and not text.isascii() for text in texts):
            ex.status, ex.body = 500, {"error": "'ascii' codec can't encode character"}
    return ex


def m_v2_scalar_shape_refused(ex):
    if is_v2_infer(ex.path) and isinstance(ex.request, dict):
        if any(isinstance(t, dict) and t.get("shape") == [] for t in ex.request.get("inputs") or []):
            ex.status, ex.body = 400, {"error": "input shape must not be empty"}
    return ex


def r_drop_outputs_selection(ex):
    request = ex.request
    if is_v2_infer(ex.path) and isinstance(request, dict):
        request.pop("outputs", None)
    return request


def _offsets_tensor(ex) -> dict | None:
    if not ok(ex) or not isinstance(ex.body, dict):
        return None
    if is_v1_predict(ex.path) or is_v2_infer(ex.path):
        return next((t for t in v2_outputs(ex) if t.get("name") == "offset_mapping"), None)
    return None


def m_offsets_v1_missing(ex):
    if ok(ex) and is_v1_predict(ex.path):
        ex.body.pop("outputs", None)
    return ex


def m_offsets_v1_shape_flat(ex):
    tensor = _offsets_tensor(ex) if is_v1_predict(ex.path) else None
    if tensor is not None:
        batch, positions, _ = tensor["shape"]
        tensor["shape"] = [batch, positions * 2]
    return ex


def m_offsets_shifted(ex):
    tensor = _offsets_tensor(ex)
    if tensor is not None:
        data = tensor["data"]
        pairs = [(data[i], data[i + 1]) for i in range(0, len(data), 2)]
        tensor["data"] = [x for s, e in pairs for x in ((s + 1, e + 1) if e > s else (s, e))]
    return ex


def m_offsets_v2_missing(ex):
    if ok(ex) and is_v2_infer(ex.path):
        ex.body["outputs"] = [t for t in v2_outputs(ex) if t.get("name") != "offset_mapping"]
    return ex


def m_offsets_v2_int32(ex):
    tensor = _offsets_tensor(ex) if is_v2_infer(ex.path) else None
    if tensor is not None:
        tensor["datatype"] = "INT32"
    return ex


def m_offsets_rows_reversed(ex):
    tensor = _offsets_tensor(ex)
    if tensor is not None and tensor["shape"][0] > 1:
        batch = tensor["shape"][0]
        step = len(tensor["data"]) // batch
        rows = [tensor["data"][i * step:(i + 1) * step] for i in range(batch)]
        tensor["data"] = [x for row in reversed(rows) for x in row]
    return ex


def _route_body(path_test, fn):
    def mutate(ex):
        if ex.method == "GET" and ok(ex) and isinstance(ex.body, dict) and path_test(ex.path):
            fn(ex.body)
        return ex
    return mutate


def _metadata_outputs(fn):
    def change(body):
        outputs = body.get("outputs") or []
        body["outputs"] = fn([dict(t) for t in outputs])
    return _route_body(is_model_metadata, change)


def _flip_first_datatype(outputs):
    if outputs:
        outputs[0]["datatype"] = "BYTES" if outputs[0].get("datatype") == "INT64" else "INT64"
    return outputs


def _extra_dimension(outputs):
    if outputs:
        outputs[0]["shape"] = [*outputs[0]["shape"], -1]
    return outputs


def m_error_detail_body(ex):
    if 400 <= ex.status < 500 and isinstance(ex.body, dict) and "error" in ex.body:
        ex.body = {"detail": ex.body["error"]}
    return ex


def m_unknown_model_answered(ex):
    if ex.status == 404:
        ex.status, ex.body = 200, {}
    return ex


def m_form_content_type_answered_junk(ex):
    if is_v1_predict(ex.path) and ex.request_content_type.startswith("application/x-www-form-urlencoded"):
        ex.status, ex.body, ex.content_type = 200, {"received": "form"}, "application/json"
    return ex


def m_hf_route_missing(ex):
    if is_entities(ex.path):
        ex.status, ex.body = 404, {"error": "Not Found"}
    return ex


def _entity_lists(ex):
    """Every entity dict of a POST /models answer (one text: a list, several: a list of lists)."""
    if not (ok(ex) and is_entities(ex.path) and isinstance(ex.body, list)):
        return []
    lists = ex.body if ex.body and all(isinstance(e, list) for e in ex.body) else [ex.body]
    return [e for found in lists for e in found if isinstance(e, dict)]


def m_hf_offsets_off_by_one(ex):
    for entity in _entity_lists(ex):
        entity["start"] += 1
    return ex


def m_hf_score_above_one(ex):
    for entity in _entity_lists(ex):
        entity["score"] = 1.5
    return ex


def m_hf_stride_truncated(ex):
    if ok(ex) and is_entities(ex.path) and isinstance(ex.request, dict) \
            and "stride" in (ex.request.get("parameters") or {}) and isinstance(ex.body, list):
        ex.body = [e for e in ex.body if isinstance(e, dict) and e.get("end", 0) <= 2000]
    return ex


def r_hf_ignore_labels_ignored(ex):
    request = ex.request
    if is_entities(ex.path) and isinstance(request, dict) and isinstance(request.get("parameters"), dict):
        if isinstance(request["parameters"].get("ignore_labels"), list):
            request["parameters"]["ignore_labels"] = []
    return request


def m_hf_list_answers_first_only(ex):
    if ok(ex) and is_entities(ex.path) and isinstance(ex.body, list) and len(ex.body) > 1 \
            and all(isinstance(e, list) for e in ex.body):
        ex.body = ex.body[0]
    return ex


def m_hf_kserve_route_no_content_type(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) and wants_entities(ex) else None
    if tensor is not None:
        tensor["parameters"] = None
    return ex


def m_hf_groups_lose_last(ex):
    request = ex.request
    strategy = ((request.get("parameters") or {}).get("aggregation_strategy") if isinstance(request, dict) else None)
    if ok(ex) and is_entities(ex.path) and strategy not in (None, "none") and isinstance(ex.body, list):
        if ex.body and all(isinstance(e, dict) for e in ex.body) and len(ex.body) > 1:
            ex.body = ex.body[:-1]
    return ex


def m_v1_single_instance_unwrapped(ex):
    if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list) \
            and len(ex.body["predictions"]) == 1:
        ex.body["predictions"] = ex.body["predictions"][0]
    return ex


def m_hf_unknown_model_answered(ex):
    if is_entities(ex.path) and ex.status == 404:
        ex.status, ex.body = 200, []
    return ex


def m_hf_bad_parameters_accepted(ex):
    if is_entities(ex.path) and ex.status == 400:
        ex.status, ex.body = 200, []
    return ex


# --- text_embedding (V1 predictions [B][D], V2 output-0 [B,D], the OpenAI route) -----------------------

def _map_vectors(fn, *, v1: bool = True, v2: bool = True, openai: bool = True):
    """A mutate that replaces the list of a request's B embeddings by fn(vectors) on V1, V2 (float) and the
    OpenAI route (float answers)."""
    def mutate(ex):
        if not ok(ex) or not isinstance(ex.body, dict):
            return ex
        if v1 and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list):
            ex.body["predictions"] = fn(ex.body["predictions"])
        tensor = output0(ex) if v2 and is_v2_infer(ex.path) else None
        if tensor is not None and len(tensor.get("shape") or []) == 2:
            batch, dimension = tensor["shape"]
            data = tensor["data"]
            rows = fn([data[i * dimension:(i + 1) * dimension] for i in range(batch)])
            tensor["data"] = [x for row in rows for x in row]
        items = ex.body.get("data") if openai and is_openai_embeddings(ex.path) else None
        if isinstance(items, list) and items and all(isinstance(i.get("embedding"), list) for i in items):
            for item, vector in zip(items, fn([i["embedding"] for i in items])):
                item["embedding"] = vector
        return ex
    return mutate


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _scaled(rows):
    return [[3.0 * v for v in row] for row in rows]


def _batch_dependent(rows):
    """Each vector moves with the batch size (B = 1: unchanged), still of unit norm."""
    return [_normalised([v + 0.02 * (len(rows) - 1) for v in row]) for row in rows]


def _noisy(rows):
    import random

    return [_normalised([v + random.uniform(-0.01, 0.01) for v in row]) for row in rows]


def _constant(rows):
    return [_normalised([1.0] * len(row)) for row in rows]


def m_emb_v2_dimension_short(ex):
    tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
    if tensor is not None and len(tensor.get("shape") or []) == 2 and tensor["shape"][1] > 1:
        batch, dimension = tensor["shape"]
        tensor["data"] = [x for i in range(batch) for x in tensor["data"][i * dimension:(i + 1) * dimension - 1]]
        tensor["shape"] = [batch, dimension - 1]
    return ex


def m_emb_v1_flat(ex):
    if ok(ex) and is_v1_predict(ex.path) and isinstance(ex.body.get("predictions"), list):
        ex.body["predictions"] = [v for row in ex.body["predictions"] for v in row]
    return ex


def _output0_update(**changes):
    def mutate(ex):
        tensor = output0(ex) if ok(ex) and is_v2_infer(ex.path) else None
        if tensor is not None:
            tensor.update({k: (v(tensor) if callable(v) else v) for k, v in changes.items()})
        return ex
    return mutate


def _openai_body(fn):
    def mutate(ex):
        if ok(ex) and is_openai_embeddings(ex.path) and isinstance(ex.body, dict):
            fn(ex.body)
        return ex
    return mutate


def _reverse_data(body, reindex: bool):
    data = list(reversed(body.get("data") or []))
    for index, item in enumerate(data):
        if reindex and isinstance(item, dict):
            item["index"] = index
    body["data"] = data


def _base64_big_endian(body):
    import base64
    import struct

    for item in body.get("data") or []:
        if isinstance(item, dict) and isinstance(item.get("embedding"), str):
            raw = base64.b64decode(item["embedding"])
            values = struct.unpack(f"<{len(raw) // 4}f", raw)
            item["embedding"] = base64.b64encode(struct.pack(f">{len(values)}f", *values)).decode("ascii")


def _usage_plus_one(body):
    if isinstance(body.get("usage"), dict):
        body["usage"] = {k: v + 1 if isinstance(v, int) else v for k, v in body["usage"].items()}


def m_openai_string_input_refused(ex):
    if is_openai_embeddings(ex.path) and isinstance(ex.request, dict) and isinstance(ex.request.get("input"), str):
        ex.status, ex.body = 400, {"error": {"message": "'input' must be a list", "type": "invalid_request_error"}}
    return ex


def m_openai_errors_answered(ex):
    if is_openai_embeddings(ex.path) and ex.status != 200:
        ex.status, ex.body = 200, {"object": "list", "data": [], "model": "model",
                                   "usage": {"prompt_tokens": 1, "total_tokens": 1}}
    return ex


def r_openai_default_base64(ex):
    request = ex.request
    if is_openai_embeddings(ex.path) and isinstance(request, dict) and "encoding_format" not in request:
        request["encoding_format"] = "base64"
    return request


def _openai_error(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _fake_embeddings(model: Any, count: int) -> dict:
    """A 200 OpenAI embeddings answer of `count` zero vectors (what a server that accepts a bad request says)."""
    return {"object": "list", "model": model, "usage": {"prompt_tokens": count, "total_tokens": count},
            "data": [{"object": "embedding", "index": i, "embedding": [0.0, 0.0]} for i in range(count)]}


def _is_token_ids(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, list) and v and isinstance(v[0], int))
        for v in value)


def _openai_request(ex) -> dict | None:
    return ex.request if is_openai_embeddings(ex.path) and isinstance(ex.request, dict) else None


def m_openai_default_format_500(ex):
    request = _openai_request(ex)
    if request is not None and "encoding_format" not in request:
        ex.status, ex.body = 500, _openai_error("'NoneType' object has no attribute 'lower'", "internal_error")
    return ex


def m_openai_token_ids_embedded(ex):
    request = _openai_request(ex)
    if request is not None and _is_token_ids(request.get("input")):
        ex.status, ex.body = 200, _fake_embeddings(request.get("model"), 1)
    return ex


def m_openai_token_ids_500(ex):
    request = _openai_request(ex)
    if request is not None and _is_token_ids(request.get("input")):
        ex.status, ex.body = 500, _openai_error("token ids: int object has no attribute 'strip'", "internal_error")
    return ex


def m_openai_malformed_json_422(ex):
    if is_openai_embeddings(ex.path) and ex.method == "POST" and ex.request is None and 400 <= ex.status < 500:
        ex.status, ex.body = 422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]}
    return ex


def m_openai_missing_input_500(ex):
    request = _openai_request(ex)
    if request is not None and "input" not in request:
        ex.status, ex.body = 500, _openai_error("'input'", "internal_error")
    return ex


def m_openai_unknown_model_answered(ex):
    request = _openai_request(ex)
    if request is not None and ex.status == 404:
        ex.status, ex.body = 200, _fake_embeddings(request.get("model"), 1)
    return ex


def m_openai_unknown_model_plain_error(ex):
    if is_openai_embeddings(ex.path) and ex.status == 404:
        ex.body = {"error": "model not found"}
    return ex


def _identity(ex):
    return ex


# --- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str
    targets: tuple[Upstream, ...]
    mutate: Callable[[Exchange], Exchange] = _identity
    rewrite_request: Callable[[Exchange], Any] | None = None
    swap: str | None = None  # None, "whole" or "content"
    repeat: int = 1  # suite runs in the mutation score (the swap is timing-dependent: proved repeatedly)

    def apply(self, exchange: Exchange) -> Exchange:
        """The answer this mutant gives (pure: the given exchange is not changed)."""
        return self.mutate(copy.deepcopy(exchange))

    def request_for(self, exchange: Exchange) -> Any:
        """The request body the real server gets (pure)."""
        if self.rewrite_request is None:
            return exchange.request
        return self.rewrite_request(copy.deepcopy(exchange))


def _int_plus(offset):
    return lambda p: p + offset if isinstance(p, int) and not isinstance(p, bool) else p


MUTANTS: tuple[Mutant, ...] = (
    # V1 predict
    Mutant("ragged-rows", "V1 token rows drop their last position (padding) for every text but the first", (TD,),
           m_ragged_rows),
    Mutant("v1-token-ids-not-nested", "V1 token ids are [ids] per text instead of KServe's [[ids]] (1xS)", (TD,),
           m_v1_token_ids_not_nested),
    Mutant("v1-drops-last-prediction", "V1 answers one prediction fewer than instances sent (B > 1)", (FD,),
           m_v1_drops_last_prediction),
    Mutant("v1-class-id-out-of-range", "V1 class ids are offset by 100 (outside the label range)", (SD,),
           _map_v1_predictions(_int_plus(100))),
    Mutant("v1-class-id-as-string", "V1 class ids are strings (\"1\") instead of integers", (SD,),
           _map_v1_predictions(lambda p: str(p) if isinstance(p, int) else p)),
    Mutant("v1-probabilities-doubled", "V1 probabilities are twice the softmax (sum 2)", (SP,),
           _map_scores(each_score(lambda v: 2 * v), v2=False)),
    Mutant("v1-token-score-label-missing", "V1 token score dicts lack the last label id", (TP,),
           _map_scores(_drop_top_label, v2=False)),
    Mutant("v1-fill-mask-empty-token", "V1 fill-mask predictions are empty strings (a decode that drops the token)",
           (FD,), _map_v1_predictions(lambda p: "" if isinstance(p, str) else p)),
    Mutant("v1-single-instance-unwrapped", "V1 answers a batch of one with the bare prediction, not a one-entry list",
           (SL,), m_v1_single_instance_unwrapped),
    Mutant("v1-inputs-key-refused", "V1 predict refuses {\"inputs\": [...]} (only 'instances' read)", (TL,),
           m_v1_inputs_key_refused),
    Mutant("v1-bare-string-refused", "V1 predict refuses a bare string in 'instances'", (SP,),
           m_v1_bare_string_refused),
    Mutant("v1-content-type-text", "V1 predict answers JSON labelled text/plain", (SL,), m_v1_content_type_text),
    Mutant("fill-mask-vocab-truncated", "fill-mask V1 score lists cover half the vocabulary", (FL,),
           _map_v1_predictions(lambda p: [entries[:len(entries) // 2] if isinstance(entries, list) else entries
                                          for entries in p] if isinstance(p, list) else p)),
    # probabilities / logits, V1 and V2
    Mutant("swapped-labels", "every label id is shifted by one (id -> (id + 1) % 9) in V1 and V2", (TD,),
           m_swapped_labels),
    Mutant("logits-softmaxed", "--return_raw_logits ignored: V1 and V2 answer probabilities instead of logits", (SL,),
           _map_scores(_softmax)),
    Mutant("fill-mask-probabilities-doubled", "fill-mask probabilities (V1 and V2) are doubled: they sum to 2", (FP,),
           _map_scores(each_score(lambda v: min(2 * v, 1.0)))),
    Mutant("fill-mask-probabilities-zero", "fill-mask probabilities (V1 and V2) are all 0", (FP,),
           _map_scores(each_score(lambda v: 0.0))),
    Mutant("v2-logits-rounded", "V2 logits are rounded to one decimal (V1 exact)", (SL,),
           _map_scores(each_score(lambda v: round(v, 1)), v1=False)),
    Mutant("token-probabilities-not-normalised", "token probabilities (V1 and V2) are each raised by 0.05", (TP,),
           _map_scores(each_score(lambda v: min(v + 0.05, 1.0)))),
    # V2 infer
    Mutant("wrong-shape", "V2 outputs declare one more element in the last dimension than they carry", (TD,),
           m_wrong_shape),
    Mutant("wrong-datatype", "V2 INT64 outputs are labelled BYTES", (TD,), m_wrong_datatype),
    Mutant("lost-id", "V2 responses carry a fresh id instead of the request's", (TL,), m_lost_id),
    Mutant("v2-output-renamed", "V2 output-0 is called output_0", (TL,), m_v2_output_renamed),
    Mutant("v2-empty-outputs", "V2 answers \"outputs\": []", (FD,), m_v2_empty_outputs),
    Mutant("v2-model-name-wrong", "V2 answers another model_name than the model asked", (SP,), m_v2_model_name_wrong),
    Mutant("v2-token-shape-flattened", "V2 token ids are [B,S] instead of [B,1,S]", (TD,), m_v2_token_shape_flattened),
    Mutant("v2-int-as-fp64", "V2 class ids are labelled FP64 instead of INT64", (SD,), m_v2_int_as_fp64),
    Mutant("v2-parameters-not-object", "V2 response parameters is a string", (FL,), m_v2_parameters_not_object),
    Mutant("v2-scores-as-numbers", "V2 BYTES score elements are the top score, not {label: score} dicts", (TP,),
           m_v2_scores_as_numbers),
    Mutant("v2-fill-mask-scores-flattened", "V2 fill-mask scores are [B, M*V] instead of [B,M,V]", (FP,),
           m_v2_fill_mask_scores_flattened),
    Mutant("v2-first-text-only", "V2 answers only the first text of a batch", (SL,), m_v2_first_text_only),
    Mutant("v2-non-ascii-refused", "V2 infer fails (500) on non-ASCII text", (FL,), m_v2_non_ascii_refused),
    Mutant("v2-scalar-shape-refused", "V2 infer refuses a text input of shape []", (SD,), m_v2_scalar_shape_refused),
    Mutant("v2-outputs-selection-ignored", "V2 infer ignores the request's 'outputs' and answers every output", (TDO,),
           rewrite_request=r_drop_outputs_selection),
    # offsets (--return_offsets_mapping)
    Mutant("offsets-v1-missing", "V1 answers no offset_mapping outputs beside the predictions", (TDO,),
           m_offsets_v1_missing),
    Mutant("offsets-v1-shape-flat", "V1 offset_mapping shape is [B, 2S] instead of [B,S,2]", (TDO,),
           m_offsets_v1_shape_flat),
    Mutant("offsets-shifted", "offsets (V1 and V2) are one character late", (TDO,), m_offsets_shifted),
    Mutant("offsets-v2-missing", "V2 answers no offset_mapping output", (TDO,), m_offsets_v2_missing),
    Mutant("offsets-v2-int32", "V2 offset_mapping is labelled INT32", (TDO,), m_offsets_v2_int32),
    Mutant("offsets-rows-reversed", "offsets rows of a batch come in reverse text order", (TDO,),
           m_offsets_rows_reversed),
    # health, readiness, metadata, model list
    Mutant("v2-live-false", "GET /v2/health/live answers {\"live\": false}", (TP,),
           _route_body(lambda p: p == "/v2/health/live", lambda b: b.update(live=False))),
    Mutant("v2-ready-false", "GET /v2/health/ready answers 200 {\"ready\": false}", (TL,),
           _route_body(lambda p: p == "/v2/health/ready", lambda b: b.update(ready=False))),
    Mutant("v2-model-ready-false", "GET /v2/models/<m>/ready answers 200 {\"ready\": false}", (FP,),
           _route_body(lambda p: p.startswith("/v2/models/") and p.endswith("/ready"), lambda b: b.update(ready=False))),
    Mutant("v2-server-metadata-no-extensions", "GET /v2 has no 'extensions' list", (FD,),
           _route_body(lambda p: p == "/v2", lambda b: b.pop("extensions", None))),
    Mutant("v2-metadata-name-wrong", "model metadata names another model", (SL,),
           _route_body(is_model_metadata, lambda b: b.update(name="other"))),
    Mutant("v2-metadata-output-datatype", "model metadata declares output-0 with the wrong datatype", (TD,),
           _metadata_outputs(_flip_first_datatype)),
    Mutant("v2-metadata-output-shape", "model metadata declares output-0 with one dimension too many", (SP,),
           _metadata_outputs(_extra_dimension)),
    Mutant("v2-metadata-offsets-undeclared", "model metadata omits the offset_mapping output inference returns",
           (TDO,), _metadata_outputs(lambda outputs: [t for t in outputs if t.get("name") != "offset_mapping"])),
    Mutant("v2-metadata-tensors-empty", "model metadata inputs and outputs are [] (KServe's default)", (SD,),
           _route_body(is_model_metadata, lambda b: b.update(inputs=[], outputs=[]))),
    Mutant("v1-models-list-empty", "GET /v1/models answers {\"models\": []}", (FL,),
           _route_body(lambda p: p == "/v1/models", lambda b: b.update(models=[]))),
    Mutant("v1-model-ready-false", "GET /v1/models/<m> answers ready false", (TP,),
           _route_body(lambda p: p.startswith("/v1/models/") and p.count("/") == 3, lambda b: b.update(ready=False))),
    # errors
    Mutant("error-500", "every 4xx answer becomes 500 {\"error\": \"Internal Server Error\"}", (TD,), m_error_500),
    Mutant("error-detail-body", "4xx bodies are {\"detail\": ...} instead of {\"error\": ...}", (SP,),
           m_error_detail_body),
    Mutant("unknown-model-answered", "a 404 (unknown model) becomes 200 {}", (FD,), m_unknown_model_answered),
    Mutant("form-content-type-junk", "V1 predict with a form content type answers 200 with a body that is no answer",
           (SD,), m_form_content_type_answered_junk),
    # HF entity route
    Mutant("hf-route-missing", "POST /models/{name} answers 404 (the entity route is gone)", (TD,), m_hf_route_missing),
    Mutant("hf-offsets-off-by-one", "entity start offsets are one character late", (TP,), m_hf_offsets_off_by_one),
    Mutant("hf-score-above-one", "entity scores are 1.5", (TL,), m_hf_score_above_one),
    Mutant("hf-stride-truncated", "with stride, entities past character 2000 are lost", (TD,), m_hf_stride_truncated),
    Mutant("hf-ignore-labels-ignored", "ignore_labels is ignored (treated as [])", (TP,),
           rewrite_request=r_hf_ignore_labels_ignored),
    Mutant("hf-list-answers-first-only", "a list of texts answers only the first text's entity list", (TL,),
           m_hf_list_answers_first_only),
    Mutant("hf-kserve-route-no-content-type", "V2 entity answers lack parameters.content_type", (TD,),
           m_hf_kserve_route_no_content_type),
    Mutant("hf-groups-lose-last", "grouped entities (simple/first/average/max) lose the last group of a text", (TP,),
           m_hf_groups_lose_last),
    Mutant("hf-unknown-model-answered", "POST /models/<unknown> answers 200 [] instead of 404", (TL,),
           m_hf_unknown_model_answered),
    Mutant("hf-bad-parameters-accepted", "bad entity parameters answer 200 []", (TL,), m_hf_bad_parameters_accepted),
    # text_embedding: V1 / V2
    Mutant("emb-v1-flattened", "V1 embeddings are one flat list of B*D floats instead of [B][D]", (EK,), m_emb_v1_flat),
    Mutant("emb-v2-shape-flat", "V2 embeddings are shaped [B*D] instead of [B,D]", (EK,),
           _output0_update(shape=lambda t: [t["shape"][0] * t["shape"][1]] if len(t["shape"]) == 2 else t["shape"])),
    Mutant("emb-v2-dimension-short", "V2 embeddings lose their last component ([B, D-1]; V1 keeps D)", (EK,),
           m_emb_v2_dimension_short),
    Mutant("emb-v2-int64", "V2 embeddings are labelled INT64", (EK,), _output0_update(datatype="INT64")),
    Mutant("emb-v2-fp16", "V2 embeddings are labelled FP16 (not FP32, nor KServe's FP64)", (EK,),
           _output0_update(datatype="FP16")),
    Mutant("emb-not-normalised", "embeddings (V1, V2, OpenAI) are 3x the unit vector", (EK,), _map_vectors(_scaled)),
    Mutant("emb-batch-dependent", "each embedding moves with the batch size (V1, V2, OpenAI), unit norm kept", (EK,),
           _map_vectors(_batch_dependent)),
    Mutant("emb-nondeterministic", "embeddings get fresh noise of 0.01 per answer (unit norm kept)", (EK,),
           _map_vectors(_noisy)),
    Mutant("emb-constant", "every text gets the same unit vector", (EK,), _map_vectors(_constant)),
    # text_embedding: the OpenAI route
    Mutant("openai-data-out-of-order", "OpenAI embedding objects come in reverse order (each keeps its index)", (EK,),
           _openai_body(lambda b: _reverse_data(b, reindex=False))),
    Mutant("openai-data-reindexed", "OpenAI embeddings come in reverse order, indexes renumbered 0..n-1", (EK,),
           _openai_body(lambda b: _reverse_data(b, reindex=True))),
    Mutant("openai-missing-usage", "OpenAI embeddings answer no usage", (EK,), _openai_body(lambda b: b.pop("usage", None))),
    Mutant("openai-usage-off-by-one", "OpenAI usage counts one token more than the inputs have", (EK,),
           _openai_body(_usage_plus_one)),
    Mutant("openai-model-not-echoed", "OpenAI embeddings answer another model than asked", (EK,),
           _openai_body(lambda b: b.update(model="text-embedding-ada-002"))),
    Mutant("openai-object-missing", "OpenAI embeddings answer no top-level object", (EK,),
           _openai_body(lambda b: b.pop("object", None))),
    Mutant("openai-base64-big-endian", "base64 embeddings pack big-endian float32", (EK,),
           _openai_body(_base64_big_endian)),
    Mutant("openai-other-vectors", "the OpenAI route answers other vectors than V1/V2 (batch-size shifted)", (EK,),
           _map_vectors(_batch_dependent, v1=False, v2=False)),
    Mutant("openai-string-input-refused", "the OpenAI route refuses a string input (only lists)", (EK,),
           m_openai_string_input_refused),
    Mutant("openai-default-base64", "without encoding_format the OpenAI route answers base64", (EK,),
           rewrite_request=r_openai_default_base64),
    Mutant("openai-errors-answered", "bad OpenAI embedding requests answer 200 with no embeddings", (EK,),
           m_openai_errors_answered),
    Mutant("openai-models-empty", "GET /openai/v1/models lists no model", (EK,),
           _route_body(lambda p: p == "/openai/v1/models", lambda b: b.update(data=[]))),
    # text_embedding on our predictor (strict: where KServe's runtime is a known divergence, these are kills)
    Mutant("emb-v2-fp64", "V2 embeddings are labelled FP64 (KServe's answer; ours is FP32)", (ED,),
           _output0_update(datatype="FP64")),
    Mutant("openai-object-embedding", "OpenAI embeddings answer top-level object \"embedding\", not \"list\"", (ED,),
           _openai_body(lambda b: b.update(object="embedding"))),
    Mutant("openai-default-format-500", "an OpenAI request without encoding_format answers 500", (ED,),
           m_openai_default_format_500),
    Mutant("openai-default-format-base64", "without encoding_format our OpenAI route answers base64", (ED,),
           rewrite_request=r_openai_default_base64),
    Mutant("openai-token-ids-embedded", "OpenAI token-id input is answered 200 with an embedding", (ED,),
           m_openai_token_ids_embedded),
    Mutant("openai-token-ids-500", "OpenAI token-id input answers 500", (ED,), m_openai_token_ids_500),
    Mutant("openai-malformed-json-422", "a malformed OpenAI request body answers FastAPI's 422 {\"detail\": [...]}",
           (ED,), m_openai_malformed_json_422),
    Mutant("openai-missing-input-500", "an OpenAI request without input answers 500", (ED,),
           m_openai_missing_input_500),
    Mutant("openai-unknown-model-answered", "OpenAI embeddings of an unknown model answer 200", (ED,),
           m_openai_unknown_model_answered),
    Mutant("openai-unknown-model-plain-error", "an unknown OpenAI model answers 404 {\"error\": \"...\"} (a string, "
           "not OpenAI's error object)", (ED,), m_openai_unknown_model_plain_error),
    # concurrency
    Mutant("mixed-concurrent", "responses of concurrent predict/infer requests are handed to each other", (SD,),
           swap="whole", repeat=3),
    Mutant("mixed-concurrent-content", "concurrent requests trade answers but keep their own V2 ids", (FD,),
           swap="content", repeat=3),
)

BY_NAME: dict[str, Mutant] = {m.name: m for m in MUTANTS}
assert len(BY_NAME) == len(MUTANTS), "mutant names must be unique"

# checks that no mutant here can fail, and why (the mutation score lists the rest as "no mutant breaks it")
CANNOT_KILL: dict[str, str] = {}


def mutant(name: str) -> Mutant:
    return BY_NAME[name]


def for_upstream(upstream: Upstream) -> list[Mutant]:
    return [m for m in MUTANTS if upstream in m.targets]



# --- gRPC mutants --------------------------------------------------------------------------------
# A gRPC mutant sits in front of the built-in predictor's gRPC port (tests/conformance_meta/grpc_mutant_proxy.py:
# raw bytes forwarded, the answer decoded into its OIP message only where a mutant looks at it). It breaks one
# rule of inference_grpc.md with two pure functions, both free of grpc imports (status codes by name):
# - `answer(rpc, response) -> None | (code_name, details)`: edits the decoded response in place, or returns the
#   status the mutant answers instead;
# - `error(rpc, code_name, details) -> (code_name, details)`: rewrites the status of a failed call.


def g_wrong_shape_no_id(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ModelInfer":
        response.id = ""
        response.outputs[0].shape.append(2)  # twice the elements the data holds
    return None


def g_raw_dropped(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ModelInfer":
        del response.raw_output_contents[:]  # a raw request answered with no data at all
    return None


def g_internal_for_text_infer(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ModelInfer":  # KServe 0.21's answer to every text ModelInfer, word for word
        return "INTERNAL", "Internal server error"
    return None


def g_empty_metadata(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ModelMetadata":
        del response.inputs[:]
        del response.outputs[:]
    return None


def g_not_live(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ServerLive":
        response.live = False
    return None


def g_server_metadata_unnamed(rpc: str, response) -> tuple[str, str] | None:
    if rpc == "ServerMetadata":
        response.name = ""
        response.version = ""
    return None


def g_not_ready(rpc: str, response) -> tuple[str, str] | None:
    if rpc in ("ServerReady", "ModelReady"):
        response.ready = False
    return None


def g_internal_for_bad_input(rpc: str, code: str, details: str) -> tuple[str, str]:
    if code == "INVALID_ARGUMENT":
        return "INTERNAL", f"Exception calling application: {details}"
    return code, details


def g_unknown_model_invalid_argument(rpc: str, code: str, details: str) -> tuple[str, str]:
    if code == "NOT_FOUND":
        return "INVALID_ARGUMENT", details
    return code, details


def g_size_limit_unknown(rpc: str, code: str, details: str) -> tuple[str, str]:
    if code == "RESOURCE_EXHAUSTED":
        return "UNKNOWN", details
    return code, details


@dataclass(frozen=True)
class GrpcMutant:
    name: str
    breaks: str
    answer: Callable[[str, Any], tuple[str, str] | None] | None = None
    error: Callable[[str, str, str], tuple[str, str]] | None = None


# the upstream every gRPC mutant is proved on: the built-in predictor with its gRPC port (a receive limit of 4 MiB)
GRPC_UPSTREAM = SD
GRPC_RECEIVE_LIMIT = 4 * 1024 * 1024

GRPC_MUTANTS: tuple[GrpcMutant, ...] = (
    GrpcMutant("grpc-wrong-shape-no-id", "ModelInfer outputs declare twice the elements they hold and drop the id",
               answer=g_wrong_shape_no_id),
    GrpcMutant("grpc-raw-dropped", "a raw ModelInfer is answered with no raw_output_contents", answer=g_raw_dropped),
    GrpcMutant("grpc-internal-for-text-infer", "every ModelInfer of text answers INTERNAL (KServe 0.21's defect)",
               answer=g_internal_for_text_infer),
    GrpcMutant("grpc-empty-metadata", "ModelMetadata lists no input or output tensors", answer=g_empty_metadata),
    GrpcMutant("grpc-not-live", "ServerLive answers live=false on a serving server", answer=g_not_live),
    GrpcMutant("grpc-server-metadata-unnamed", "ServerMetadata answers an empty name and version",
               answer=g_server_metadata_unnamed),
    GrpcMutant("grpc-not-ready", "ServerReady and ModelReady answer ready=false on a serving server",
               answer=g_not_ready),
    GrpcMutant("grpc-internal-for-bad-input", "a bad input answers INTERNAL instead of INVALID_ARGUMENT",
               error=g_internal_for_bad_input),
    GrpcMutant("grpc-unknown-model-invalid-argument", "an unknown model answers INVALID_ARGUMENT, not NOT_FOUND",
               error=g_unknown_model_invalid_argument),
    GrpcMutant("grpc-size-limit-unknown", "a message over the size limit answers UNKNOWN, not RESOURCE_EXHAUSTED",
               error=g_size_limit_unknown),
)

GRPC_BY_NAME: dict[str, GrpcMutant] = {m.name: m for m in GRPC_MUTANTS}
assert not set(GRPC_BY_NAME) & set(BY_NAME), "gRPC and HTTP mutant names must be distinct"
