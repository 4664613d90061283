"""A small OIP V2 gRPC client for the conformance suite (`inference.GRPCInferenceService`).

The message classes and the request builder come from `workbench.oip_messages` (the descriptor set
shipped with workbench, in a private descriptor pool; nothing of workbench.serving is imported).

Every call takes the endpoint's `--request-timeout`. `GrpcClient.call(name, request)` returns the
response message or raises `grpc.RpcError` (its `.code()` is the status the checks look at).
"""

from __future__ import annotations

import struct

from workbench import oip_messages
from workbench.oip_messages import messages, raw_bytes_elements  # noqa: F401  (the checks use both)

SERVICE = "inference.GRPCInferenceService"
METHODS = {  # rpc -> (request message, response message)
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
}
# Which InferTensorContents field holds each datatype (inference.proto's comments on each field).
CONTENTS_FIELD = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
                  "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
                  "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
                  "FP64": "fp64_contents", "BYTES": "bytes_contents"}
# Raw little-endian element formats (FP16/BF16 are 2 bytes; the suite only counts them).
RAW_FORMAT = {"BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q", "UINT8": "B", "UINT16": "H",
              "UINT32": "I", "UINT64": "Q", "FP32": "f", "FP64": "d", "FP16": "e"}
RAW_SIZE = {**{name: struct.calcsize("<" + fmt) for name, fmt in RAW_FORMAT.items()}, "BF16": 2}


def message(type_name: str, **fields):
    return getattr(messages(), type_name)(**fields)


class GrpcClient:
    """`authority`: the :authority to send (an InferenceService's host, when reached through an ingress)."""

    def __init__(self, address: str, timeout: float = 30.0, authority: str | None = None):
        import grpc

        self.address = address
        self.timeout = timeout
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if authority:
            options.append(("grpc.default_authority", authority))
        self.channel = grpc.insecure_channel(address, options=options)
        types = messages()
        self.stubs = {rpc: self.channel.unary_unary(f"/{SERVICE}/{rpc}",
                                                    request_serializer=getattr(types, req).SerializeToString,
                                                    response_deserializer=getattr(types, resp).FromString)
                      for rpc, (req, resp) in METHODS.items()}

    def call(self, rpc: str, request=None, timeout: float | None = None):
        if request is None:
            request = message(METHODS[rpc][0])
        return self.stubs[rpc](request, timeout=timeout or self.timeout)

    def close(self) -> None:
        self.channel.close()


# --- requests the checks send ------------------------------------------------------------------

def infer_request(model_name: str, texts: list[str], *, input_name: str = "text", raw: bool = False,
                  request_id: str | None = None):
    return oip_messages.infer_request(model_name, texts, input_name=input_name, raw=raw, request_id=request_id or "")


# --- reading answers ---------------------------------------------------------------------------

class Malformed(Exception):
    """An output tensor that breaks the OIP gRPC rules (the message says which)."""


def element_count(shape) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def split_raw_bytes(buffer: bytes, where: str) -> list[bytes]:
    items, offset = [], 0
    while offset < len(buffer):
        if offset + 4 > len(buffer):
            raise Malformed(f"{where}: raw BYTES ends inside a 4-byte length prefix")
        (size,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + size > len(buffer):
            raise Malformed(f"{where}: raw BYTES element of {size} bytes runs past the end of the buffer")
        items.append(buffer[offset:offset + size])
        offset += size
    return items


def output_values(response, index: int) -> list:
    """Output `index` of a ModelInferResponse as a flat list (typed contents or raw_output_contents),
    after checking its header and that the element count matches its shape."""
    tensor = response.outputs[index]
    where = f"outputs[{index}] ({tensor.name or 'unnamed'})"
    if not tensor.name:
        raise Malformed(f"outputs[{index}]: no name")
    if tensor.datatype not in RAW_SIZE and tensor.datatype != "BYTES":
        raise Malformed(f"{where}: datatype {tensor.datatype!r} is not an OIP datatype")
    if any(dim < 0 for dim in tensor.shape):
        raise Malformed(f"{where}: negative dimension in shape {list(tensor.shape)}")
    expected = element_count(tensor.shape)
    raw = list(response.raw_output_contents)
    if raw:
        if len(raw) != len(response.outputs):
            raise Malformed(f"raw_output_contents has {len(raw)} buffers for {len(response.outputs)} outputs")
        if tensor.HasField("contents") and tensor.contents.ListFields():
            raise Malformed(f"{where}: both contents and raw_output_contents")
        buffer = raw[index]
        if tensor.datatype == "BYTES":
            values: list = [b.decode("utf-8", "replace") for b in split_raw_bytes(buffer, where)]
        elif tensor.datatype in RAW_FORMAT:
            size = RAW_SIZE[tensor.datatype]
            if len(buffer) % size:
                raise Malformed(f"{where}: {len(buffer)} raw bytes is not a whole number of {tensor.datatype}")
            values = list(struct.unpack(f"<{len(buffer) // size}{RAW_FORMAT[tensor.datatype]}", buffer))
        else:
            values = [None] * (len(buffer) // RAW_SIZE[tensor.datatype])
    else:
        filled = [field.name for field, _ in tensor.contents.ListFields()]
        wanted = CONTENTS_FIELD.get(tensor.datatype)
        if wanted is None:
            raise Malformed(f"{where}: {tensor.datatype} has no typed contents field; it must come raw")
        if [name for name in filled if name != wanted]:
            raise Malformed(f"{where}: datatype {tensor.datatype} but contents in {filled} (expected {wanted})")
        values = list(getattr(tensor.contents, wanted))
        if tensor.datatype == "BYTES":
            values = [b.decode("utf-8", "replace") for b in values]
    if len(values) != expected:
        raise Malformed(f"{where}: {len(values)} elements for shape {list(tensor.shape)} ({expected} expected)")
    return values


def unreachable_reason(exc) -> str:
    """"connection refused", "timed out", ... from a failed call (gRPC's details carry every address tried)."""
    details = exc.details() or ""
    if exc.code().name == "DEADLINE_EXCEEDED":
        return "timed out (DEADLINE_EXCEEDED)"
    last = details.rsplit(": ", 1)[-1].strip() if "Failed to connect" in details or "DNS" in details else details
    return f"{last[:1].lower() + last[1:]} ({exc.code().name})" if last else exc.code().name


def probe(address: str, model_name: str, timeout: float = 10.0, authority: str | None = None,
          source: str = "--grpc-endpoint") -> str | None:
    """None when `address` answers ServerLive and serves `model_name`; otherwise the one line to stop with.
    `source` says where the address came from (the option, or what --isvc discovered)."""
    import grpc

    client = GrpcClient(address, timeout=timeout, authority=authority)
    try:
        try:
            client.call("ServerLive")
        except grpc.RpcError as exc:
            return f"cannot reach gRPC endpoint {address} ({source}): {unreachable_reason(exc)}"
        try:
            client.call("ModelMetadata", message("ModelMetadataRequest", name=model_name))
        except grpc.RpcError as exc:
            return (f"gRPC endpoint {address} does not serve model {model_name!r} (--model-name): "
                    f"ModelMetadata answered {exc.code().name}: {exc.details()}")
        return None
    finally:
        client.close()
