"""The Open Inference Protocol's gRPC messages, and the one way this project builds an inference request.

One loader for every side: the predictor (`serving/grpc_service.py`), the conformance suite's client
(`conformance/grpc_client.py`) and `workbench bench`. The classes come from the descriptor set shipped in
the package (`serving/proto/inference.binpb`, read as data through importlib.resources) loaded into one
private descriptor pool: tritonclient's and kserve's generated modules register the same `inference`
package in protobuf's default pool, and two registrations of one name clash. Imports nothing of
workbench.serving, so the suite's client stays independent of the server it checks.
"""

from __future__ import annotations

import functools
import struct
from importlib import resources
from types import SimpleNamespace
from typing import Sequence

MESSAGE_NAMES = (
    "ServerLiveRequest", "ServerLiveResponse", "ServerReadyRequest", "ServerReadyResponse",
    "ModelReadyRequest", "ModelReadyResponse", "ServerMetadataRequest", "ServerMetadataResponse",
    "ModelMetadataRequest", "ModelMetadataResponse", "ModelInferRequest", "ModelInferResponse",
    "InferParameter", "InferTensorContents",
)


@functools.lru_cache(maxsize=None)
def messages() -> SimpleNamespace:
    """The OIP message classes by name (`messages().ModelInferRequest`)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    data = resources.files("workbench").joinpath("serving", "proto", "inference.binpb").read_bytes()
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    return SimpleNamespace(**{name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"inference.{name}"))
                              for name in MESSAGE_NAMES})


def raw_bytes_elements(texts: Sequence[str]) -> bytes:
    """BYTES elements in `raw_input_contents` form: each a 4-byte little-endian length, then its UTF-8 bytes."""
    return b"".join(struct.pack("<I", len(b)) + b for b in (t.encode("utf-8") for t in texts))


def infer_request(model_name: str, texts: Sequence[str], *, input_name: str = "text", raw: bool = False,
                  request_id: str = ""):
    """A `ModelInferRequest` for `texts`: one BYTES input of shape [n], as typed `contents.bytes_contents`
    or (raw) as one `raw_input_contents` buffer."""
    request = messages().ModelInferRequest(model_name=model_name, id=request_id)
    tensor = request.inputs.add(name=input_name, datatype="BYTES", shape=[len(texts)])
    if raw:
        request.raw_input_contents.append(raw_bytes_elements(texts))
    else:
        tensor.contents.bytes_contents.extend(t.encode("utf-8") for t in texts)
    return request
