"""Open Inference Protocol (V2) REST: request validation, response building, binary tensor extension.

Pure functions. The request's first input carries the texts (BYTES); its element count must equal
the product of its shape (a single text may be sent with shape [] or [1]).
"""

from __future__ import annotations

import math
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from workbench.serving.errors import BadRequest

BINARY_HEADER = "inference-header-content-length"


@dataclass
class V2Request:
    texts: list[str]
    id: str
    requested_outputs: list[str] | None = None  # None: all outputs
    binary_outputs: set[str] = field(default_factory=set)  # names to return as binary data
    parameters: dict[str, Any] = field(default_factory=dict)


def _flatten(data: Any) -> list:
    if isinstance(data, list):
        out: list = []
        for item in data:
            out.extend(_flatten(item)) if isinstance(item, list) else out.append(item)
        return out
    return [data]


def _decode_binary_bytes(raw: bytes, where: str) -> list[str]:
    """BYTES elements in the binary extension: 4-byte little-endian length, then the bytes."""
    texts, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequest(f"{where}: truncated BYTES element length at byte {offset}")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequest(f"{where}: BYTES element of {length} bytes runs past the end of the data")
        try:
            texts.append(raw[offset:offset + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"{where}: element is not valid UTF-8 ({exc})") from None
        offset += length
    return texts


def split_binary_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON part, binary part) of a request that uses the binary tensor data extension."""
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        raise BadRequest(f"Inference-Header-Content-Length must be an integer, got {header_length!r}") from None
    if n < 0 or n > len(body):
        raise BadRequest(f"Inference-Header-Content-Length {n} is outside the body's {len(body)} bytes")
    return body[:n], body[n:]


def parse_request(body: Any, binary: bytes = b"") -> V2Request:
    """Validate an inference request and return its texts."""
    if not isinstance(body, dict):
        raise BadRequest(f"a V2 inference request must be a JSON object, got {type(body).__name__}")
    inputs = body.get("inputs")
    if inputs is None:
        raise BadRequest("a V2 inference request needs 'inputs': [{\"name\", \"shape\", \"datatype\", \"data\"}]")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    if len(inputs) != 1:
        names = [t.get("name") if isinstance(t, dict) else t for t in inputs]
        raise BadRequest(f"this model takes exactly one input tensor (BYTES texts), got {len(inputs)}: {names}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise BadRequest("'inputs[0]' must be an object with name, shape, datatype and data")
    for key in ("name", "shape", "datatype"):
        if key not in tensor:
            raise BadRequest(f"'inputs[0]' is missing '{key}'")
    name = tensor["name"]
    if not isinstance(name, str):
        raise BadRequest("'inputs[0].name' must be a string")
    datatype = tensor["datatype"]
    if datatype != "BYTES":
        raise BadRequest(f"input '{name}' has datatype {datatype!r}; texts must be sent as datatype 'BYTES'")
    shape = tensor["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"input '{name}' shape must be a list of non-negative integers, got {shape!r}")
    parameters = tensor.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(f"input '{name}' parameters must be an object")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if not isinstance(size, int) or size < 0 or size > len(binary):
            raise BadRequest(f"input '{name}' binary_data_size {size!r} does not fit the {len(binary)} binary bytes sent")
        texts = _decode_binary_bytes(binary[:size], f"input '{name}'")
    else:
        if "data" not in tensor:
            raise BadRequest(f"input '{name}' has no 'data'")
        texts = _flatten(tensor["data"])
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequest(f"input '{name}' element {index} is {type(text).__name__}, expected a string (BYTES)")
    expected = math.prod(shape)
    if expected != len(texts):
        raise BadRequest(f"input '{name}' has shape {shape} ({expected} elements) but carries {len(texts)} elements")
    if not texts:
        raise BadRequest(f"input '{name}' is empty: send at least one text")

    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    request_parameters = body.get("parameters") or {}
    if not isinstance(request_parameters, dict):
        raise BadRequest("'parameters' must be an object")
    binary_all = bool(request_parameters.get("binary_data_output", False))

    requested = None
    binary_outputs: set[str] = set()
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise BadRequest("'outputs' must be a list of objects with a 'name'")
        requested = [o["name"] for o in outputs]
        for o in outputs:
            flag = (o.get("parameters") or {}).get("binary_data", binary_all)
            if flag:
                binary_outputs.add(o["name"])
    return V2Request(texts=texts, id=request_id if request_id is not None else str(uuid.uuid4()),
                     requested_outputs=requested, binary_outputs=binary_outputs if outputs is not None else ({"*"} if binary_all else set()),
                     parameters=request_parameters)


def _shape_of(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _is_regular(value: Any, shape: list[int]) -> bool:
    if not shape:
        return not isinstance(value, list)
    if not isinstance(value, list) or len(value) != shape[0]:
        return False
    return all(_is_regular(item, shape[1:]) for item in value)


def to_tensor(name: str, inferences: list) -> dict:
    """A V2 output tensor from per-text inferences, as numpy would see `np.array(inferences)`:
    strings and dicts become BYTES (dicts as their Python `str`), integers INT64, floats FP32."""
    shape = _shape_of(inferences)
    if not _is_regular(inferences, shape):
        raise BadRequest(
            "the texts of this request give outputs of different shapes (e.g. a different number of mask "
            "tokens per text), which one V2 tensor cannot hold; send them in separate requests"
        )
    flat = _flatten(inferences)
    sample = flat[0] if flat else 0
    if isinstance(sample, bool):
        datatype = "BOOL"
    elif isinstance(sample, int):
        datatype = "INT64"
    elif isinstance(sample, float):
        datatype = "FP32"
    else:
        datatype = "BYTES"
        flat = [item if isinstance(item, str) else str(item) for item in flat]
    return {"name": name, "shape": shape, "datatype": datatype, "parameters": None, "data": flat}


def build_response(model_name: str, request_id: str, outputs: list[dict],
                   parameters: dict | None = None) -> dict:
    """Field order and null fields as KServe's pydantic InferenceResponse serialises them."""
    return {"model_name": model_name, "model_version": None, "id": request_id,
            "parameters": parameters, "outputs": outputs}


def select_outputs(outputs: list[dict], requested: list[str] | None) -> list[dict]:
    if requested is None:
        return outputs
    by_name = {o["name"]: o for o in outputs}
    unknown = [name for name in requested if name not in by_name]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}; this model returns {list(by_name)}")
    return [by_name[name] for name in requested]


def encode_binary(response: dict, binary_names: set[str]) -> tuple[bytes, int] | None:
    """Move the data of the named outputs ("*": all) into the binary extension.
    Returns (body, json_length) or None when nothing is binary."""
    import numpy as np

    chunks: list[bytes] = []
    any_binary = False
    for output in response["outputs"]:
        if "*" not in binary_names and output["name"] not in binary_names:
            continue
        any_binary = True
        data = output.pop("data")
        if output["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in (s.encode("utf-8") for s in data))
        elif output["datatype"] == "INT64":
            raw = np.asarray(data, dtype="<i8").tobytes()
        elif output["datatype"] == "FP32":
            raw = np.asarray(data, dtype="<f4").tobytes()
        else:
            raw = np.asarray(data, dtype=bool).tobytes()
        output["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    if not any_binary:
        return None
    import orjson

    header = orjson.dumps(response)
    return header + b"".join(chunks), len(header)


def entity_output(name: str, entities: list[list[dict]], strategy: str) -> dict:
    """Entities as a V2 output: BYTES of shape [B], each element that text's entity list as JSON."""
    import json

    return {"name": name, "shape": [len(entities)], "datatype": "BYTES",
            "parameters": {"content_type": "application/json", "aggregation_strategy": strategy},
            "data": [json.dumps(row, ensure_ascii=False) for row in entities]}


def truncation_parameters(truncated: list[bool]) -> dict:
    """Response parameters saying which texts were cut off (V2 parameter values are scalars, so the
    indices travel as a JSON string)."""
    import json

    return {"truncated": any(truncated), "truncated_indices": json.dumps([i for i, t in enumerate(truncated) if t])}
