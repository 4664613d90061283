"""Open Inference Protocol (V2) REST codec: JSON (and the binary tensor extension) to the data plane's
`InferRequest`, and its `InferResponse` back. Pure functions.

The request's first input carries the texts (BYTES); its element count must equal the product of its
shape (a single text may be sent with shape [] or [1]). Response tensors come built from the model's
output declaration (`dataplane.output_specs`); this module only lays them out on the wire.
"""

from __future__ import annotations

import math
import struct
import uuid
from typing import Any

from workbench.serving.dataplane import InferResponse, InferRequest
from workbench.serving.errors import BadRequest
from workbench.serving.wire_json import dump_json

BINARY_HEADER = "inference-header-content-length"
RAW_DTYPE = {"INT64": "<i8", "FP32": "<f4", "BOOL": "?"}


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


def parse_request(body: Any, binary: bytes = b"") -> InferRequest:
    """Validate an inference request: the data plane's request, or BadRequest saying what is wrong."""
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
    return InferRequest(texts=texts, id=request_id if request_id is not None else str(uuid.uuid4()),
                     requested_outputs=requested, binary_outputs=binary_outputs if outputs is not None else ({"*"} if binary_all else set()),
                     parameters=request_parameters)


def encode_response(response: InferResponse, binary_outputs: set[str]) -> tuple[bytes, int | None]:
    """The data plane's response as a REST V2 body: (JSON, None), or with the binary tensor extension
    when outputs are asked for as binary ("*": all), (JSON header + buffers, the header's length)."""
    payload = response.as_dict()
    chunks: list[bytes] = []
    for tensor, output in zip(response.outputs, payload["outputs"]):
        if "*" not in binary_outputs and tensor.name not in binary_outputs:
            continue
        raw = binary_buffer(tensor.datatype, output.pop("data"))
        output["parameters"] = {"binary_data_size": len(raw)}
        chunks.append(raw)
    header = dump_json(payload)
    if not chunks:
        return header, None
    return header + b"".join(chunks), len(header)


def binary_buffer(datatype: str, data: list) -> bytes:
    """One tensor's flat data as the binary extension (and gRPC raw contents) carry it: BYTES elements
    as 4-byte little-endian length + bytes, numbers little-endian."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(b)) + b for b in (s.encode("utf-8") for s in data))
    import numpy as np

    return np.asarray(data, dtype=RAW_DTYPE[datatype]).tobytes()
