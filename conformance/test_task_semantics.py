"""Task semantics per output mode, as KServe's Hugging Face runtime answers (reference doc §1 Outputs table)."""

from __future__ import annotations

import pytest

from conformance import semantics
from conformance.checks import clause, level, needs_task, protocol
from conformance.target import infer_v2, predict_v1

pytestmark = needs_task


@level("kserve")
@protocol("v1")
@clause("KServe HF runtime §Outputs (V1): token cls [[ids]] per text (1xS) / S score dicts; seq cls id / dict; "
        "fill mask string / per-mask score lists; text_embedding [B][D] floats")
def test_v1_predictions_nesting_for_task_and_mode(client, target):
    """V1 predictions have the nesting KServe's HF runtime gives for this task and mode."""
    predict_v1(client, target, target.texts(2))


@level("kserve")
@protocol("v2")
@clause("KServe HF runtime §Outputs (V2): output-0 is INT64 [B,1,S] / [B] for ids, BYTES [B,S] / [B] / [B] for "
        "score dicts and fill-mask strings; text_embedding a float tensor [B,D] (FP32: test_v2_embeddings_are_fp32)")
def test_v2_output_datatype_and_shape_for_task_and_mode(client, target):
    """V2 output-0 has the datatype and shape KServe's HF runtime gives for this task and mode."""
    infer_v2(client, target, target.texts(2))


@level("kserve")
@clause("KServe HF runtime §Outputs: class/label ids within [0, num_labels); score dicts keyed by every label id; "
        "probabilities sum to 1")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_values_within_label_range_and_probabilities_sum_to_one(client, target, proto):
    """Ids lie in the label range, score dicts cover all labels, probabilities sum to 1."""
    if target.task == semantics.TEXT_EMBEDDING:
        pytest.skip("no labels or probabilities (an embedding's norm: test_embeddings_have_unit_l2_norm)")
    rows = (predict_v1(client, target, target.texts(2)) if proto == "v1"
            else infer_v2(client, target, target.texts(2))[1])
    reference = target.reference
    semantics.check_row_semantics(target.task, target.mode, rows,
                                  num_labels=reference.num_labels if reference else None,
                                  vocab_size=reference.vocab_size if reference and target.task == "fill_mask" else None)


@level("kserve")
@clause("KServe HF runtime §Outputs: S = the longest tokenized length in the request, special tokens and "
        "padding positions included")
@pytest.mark.parametrize("proto", ["v1", "v2"])
def test_token_positions_equal_tokenized_length(client, target, proto):
    """Token classification rows have S entries, S = tokenized length of the longest text (tokenizer at hand)."""
    if target.task != "token_classification":
        pytest.skip("token classification only")
    if target.reference is None:
        pytest.skip("needs a tokenizer: pass --reference-model")
    texts = target.texts(3)
    rows = predict_v1(client, target, texts) if proto == "v1" else infer_v2(client, target, texts)[1]
    semantics.check_row_semantics(target.task, target.mode, rows, token_lengths=target.reference.token_lengths(texts))
