"""A V2 client nobody here wrote: NVIDIA's tritonclient[http] talks to our server."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serving.reference import KServeReference

httpclient = pytest.importorskip("tritonclient.http")


def client_for(url: str):
    return httpclient.InferenceServerClient(url=url.removeprefix("http://"))


@pytest.mark.parametrize("binary", [True, False], ids=["binary-data", "json-data"])
def test_tritonclient_infer_with_a_bytes_input(server, tiny_models, binary):
    url = server("token_classification")
    client = client_for(url)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("model")
    texts = ["My name is Wolfgang and I live in Berlin", "My name is Lisa and I live in Paris"]
    tensor = httpclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=np.object_), binary_data=binary)
    wanted = httpclient.InferRequestedOutput("output-0", binary_data=binary)
    result = client.infer("model", [tensor], outputs=[wanted], request_id="triton-1")
    ids = result.as_numpy("output-0")
    expected = KServeReference(tiny_models("token_classification"), "token_classification").predict(texts)
    assert ids.dtype == np.int64 and ids.shape == (2, 1, len(expected[0][0]))
    assert ids.tolist() == expected
    assert result.get_response()["id"] == "triton-1"


def test_tritonclient_reads_bytes_outputs_and_metadata(server):
    url = server("sequence_classification", "--return_probabilities")
    client = client_for(url)
    metadata = client.get_model_metadata("model")
    assert metadata["inputs"][0]["datatype"] == "BYTES"
    tensor = httpclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array(["Hello, my dog is cute"], dtype=np.object_))
    result = client.infer("model", [tensor])
    (element,) = result.as_numpy("output-0")
    text = element.decode() if isinstance(element, bytes) else element
    assert text.startswith("{0: ") and ", 1: " in text
