"""text_embedding over V1 and V2: what KServe's runtime answers (one vector per text, mean-pooled and
L2-normalised; huggingfaceserver `encoder_model.py` `_process_text_embedding`).

The shapes ([B][D] on V1, [B, D] on V2), V1 = V2, determinism, batch invariance and the reference-model
differential are the task-generic checks (test_task_semantics, test_consistency, test_outputs), which know
text_embedding's rows; these are the checks that only an embedding has. They skip for the other tasks.
"""

from __future__ import annotations

import pytest

from conformance import embeddings, semantics
from conformance.checks import clause, level, needs_task, protocol
from conformance.profiles import diverge_or_fail
from conformance.target import predict_rows

pytestmark = needs_task


@pytest.fixture
def embedding_target(target):
    if target.task != semantics.TEXT_EMBEDDING:
        pytest.skip("text_embedding only")
    return target


@level("kserve")
@clause("KServe HF runtime text_embedding: each embedding is L2-normalised (F.normalize(p=2, dim=1)): "
        "norm 1 within 2e-3 (fp32 leaves ~1e-6; 2e-3 bounds a half-precision answer)")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_embeddings_have_unit_l2_norm(client, embedding_target, proto):
    """Every embedding of a batch has L2 norm 1."""
    embeddings.check_unit_norms(predict_rows(client, embedding_target, embedding_target.texts(3), proto))


@level("kserve")
@clause("KServe HF runtime text_embedding: the vector is a function of the text (mean of its token vectors): "
        "different texts get different vectors")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_different_texts_get_different_embeddings(client, embedding_target, proto):
    """No two different texts of a batch get the same vector (some component differs by more than 1e-3)."""
    texts = embedding_target.texts(4)
    embeddings.check_distinct(predict_rows(client, embedding_target, texts, proto), texts)


@level("kserve")
@protocol("v2")
@clause("Issue 14 / KServe HF runtime text_embedding: V2 output-0 is FP32 [B, D], the precision the model "
        "computes in (OIP §Tensor Data Types lets a server choose; FP64 doubles the payload for nothing)")
def test_v2_embeddings_are_fp32(client, embedding_target, profile):
    """V2 output-0 of an embedding request is labelled FP32, shape [B, D]."""
    texts = embedding_target.texts(2)
    response = client.post(embedding_target.v2_infer_path, json_body=embedding_target.v2_body(texts))
    assert response.status_code == 200, f"infer answered {response.status_code}: {response.text[:300]}"
    tensor = semantics.find_output(response.json())
    semantics.v2_rows(embedding_target.task, embedding_target.mode, tensor, len(texts))
    if tensor["datatype"] != "FP32":
        diverge_or_fail(profile, "v2-embedding-fp32", response,
                        f"output-0 is {tensor['datatype']} {tensor['shape']}, expected FP32 [B, D]")


@level("kserve")
@clause("KServe HF runtime text_embedding: D = the model's hidden size, the same for every request")
def test_embedding_dimension_is_the_same_for_every_request(client, embedding_target):
    """One text and three texts, over V1 and V2 where checked, all get D-long vectors for one D."""
    dimensions = set()
    for proto in embedding_target.protocols:
        for count in (1, 3):
            dimensions |= {len(row) for row in predict_rows(client, embedding_target,
                                                            embedding_target.texts(count, start=count), proto)}
    assert len(dimensions) == 1, f"embedding dimensions differ between requests: {sorted(dimensions)}"
