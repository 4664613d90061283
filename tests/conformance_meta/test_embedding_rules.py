"""The pure rules behind the text_embedding checks (conformance.embeddings, semantics' embedding rows) and the
embedding mutants' pure functions: each rule accepts KServe's real answer shapes and refuses the broken ones."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from conformance import embeddings, semantics
from conformance.semantics import TEXT_EMBEDDING, Violation
from tests.conformance_meta.mutants import BY_NAME, Exchange

UNIT = [0.6, 0.8]


def b64(values, order="<") -> str:
    return base64.b64encode(struct.pack(f"{order}{len(values)}f", *values)).decode("ascii")


def test_v1_rows_are_b_vectors_of_d_finite_floats():
    assert semantics.v1_rows(TEXT_EMBEDDING, "default", [UNIT, [1, 0]], 2) == [UNIT, [1.0, 0.0]]
    for bad in ([UNIT], [0.6, 0.8], [UNIT, [True, 0.0]], [UNIT, ["0.6", 0.8]], [UNIT, [math.inf, 0.0]], [UNIT, [1.0]]):
        with pytest.raises(Violation):
            semantics.v1_rows(TEXT_EMBEDDING, "default", bad, 2)


def test_v2_rows_need_a_float_tensor_b_by_d():
    tensor = {"name": "output-0", "shape": [2, 2], "datatype": "FP32", "data": [*UNIT, 1.0, 0.0]}
    assert semantics.v2_rows(TEXT_EMBEDDING, "default", tensor, 2) == [UNIT, [1.0, 0.0]]
    assert semantics.v2_rows(TEXT_EMBEDDING, "default", {**tensor, "datatype": "FP64"}, 2)  # KServe's: a float type
    for changes in ({"shape": [4]}, {"shape": [1, 4]}, {"datatype": "INT64"}, {"datatype": "BYTES"}):
        with pytest.raises(Violation):
            semantics.v2_rows(TEXT_EMBEDDING, "default", {**tensor, **changes}, 2)


def test_unit_norm_tolerance_admits_half_precision_and_refuses_scaling():
    embeddings.check_unit_norms([UNIT, [v * (1 + 2 ** -9) for v in UNIT]])
    for bad in ([v * 1.01 for v in UNIT], [3 * v for v in UNIT]):
        with pytest.raises(Violation, match="L2 norm"):
            embeddings.check_unit_norms([bad])


def test_distinct_texts_need_distinct_vectors():
    embeddings.check_distinct([UNIT, [0.8, 0.6]], ["a", "b"])
    embeddings.check_distinct([UNIT, UNIT], ["a", "a"])  # the same text may repeat
    with pytest.raises(Violation, match="same embedding"):
        embeddings.check_distinct([UNIT, [0.6, 0.8 + 1e-4]], ["a", "b"])


def test_base64_is_little_endian_float32():
    assert embeddings.decode_base64_floats(b64(UNIT), "e") == pytest.approx(UNIT, abs=1e-7)
    assert embeddings.decode_base64_floats(b64(UNIT, ">"), "e") != pytest.approx(UNIT, abs=1e-3)
    for bad in ([0.6], "not base64!", base64.b64encode(b"abc").decode()):
        with pytest.raises(Violation):
            embeddings.decode_base64_floats(bad, "e")


def test_openai_schema_rules():
    body = {"object": "list", "model": "m", "usage": {"prompt_tokens": 3, "total_tokens": 3},
            "data": [{"object": "embedding", "index": 0, "embedding": UNIT}, {"object": "embedding", "index": 1,
                                                                             "embedding": [1.0, 0.0]}]}
    assert embeddings.float_embeddings(body, 2) == [UNIT, [1.0, 0.0]]
    assert embeddings.check_usage(body) == body["usage"]
    reordered = {**body, "data": list(reversed(body["data"]))}
    with pytest.raises(Violation, match="input order"):
        embeddings.embedding_items(reordered, 2)
    with pytest.raises(Violation):
        embeddings.float_embeddings(body, 3)
    for usage in (None, {"prompt_tokens": 0, "total_tokens": 0}, {"prompt_tokens": 3, "total_tokens": 2},
                  {"prompt_tokens": 3.0, "total_tokens": 3}):
        with pytest.raises(Violation):
            embeddings.check_usage({**body, "usage": usage})


def test_openai_error_shape():
    assert embeddings.openai_error({"error": {"message": "bad", "type": "invalid_request_error", "param": None}}) is None
    for bad in ({"error": "bad"}, {"detail": []}, {"error": {"message": "", "type": "x"}}, {"error": {"message": "m"}}):
        assert embeddings.openai_error(bad) is not None


def test_embedding_mutants_change_v1_v2_and_openai_answers():
    v2 = Exchange("POST", "/v2/models/model/infer", {}, "", 200,
                  {"outputs": [{"name": "output-0", "shape": [2, 2], "datatype": "FP64", "data": [*UNIT, 1.0, 0.0]}]})
    scaled = BY_NAME["emb-not-normalised"].apply(v2)
    assert scaled.body["outputs"][0]["data"] == pytest.approx([1.8, 2.4, 3.0, 0.0])
    moved = BY_NAME["emb-batch-dependent"].apply(v2).body["outputs"][0]["data"]
    assert moved != pytest.approx(v2.body["outputs"][0]["data"]) and math.hypot(*moved[:2]) == pytest.approx(1.0)
    one = Exchange("POST", "/v1/models/model:predict", {}, "", 200, {"predictions": [UNIT]})
    assert BY_NAME["emb-batch-dependent"].apply(one).body == one.body  # alone: unchanged
    openai = Exchange("POST", "/openai/v1/embeddings", {"input": ["a"], "encoding_format": "base64"}, "", 200,
                      {"data": [{"object": "embedding", "index": 0, "embedding": b64(UNIT)}]})
    big = BY_NAME["openai-base64-big-endian"].apply(openai).body["data"][0]["embedding"]
    assert big == b64(UNIT, ">")
    assert BY_NAME["openai-default-base64"].request_for(
        Exchange("POST", "/openai/v1/embeddings", {"input": "a"}))["encoding_format"] == "base64"
