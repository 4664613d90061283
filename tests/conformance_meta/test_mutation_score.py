"""The mutant catalogue: pure functions behave, targets cover every task and mode, and (slow) the suite kills
every mutant (`python -m tests.conformance_meta.mutation_score`)."""

from __future__ import annotations

import pytest

from conformance import semantics
from tests.conformance_meta import mutants as catalogue
from tests.conformance_meta.mutants import BY_NAME, MUTANTS, UPSTREAMS, Exchange


def test_catalogue_has_at_least_40_mutants_covering_every_upstream():
    assert len(MUTANTS) >= 40
    covered = {u for m in MUTANTS for u in m.targets}
    assert covered == set(UPSTREAMS)
    for mutant in MUTANTS:
        assert mutant.breaks and mutant.targets, mutant.name
        assert mutant.mutate is not catalogue._identity or mutant.rewrite_request or mutant.swap, mutant.name


def test_mutate_is_pure_and_changes_only_its_route():
    body = {"model_name": "model", "id": "a", "outputs": [{"name": "output-0", "shape": [1, 1, 3], "datatype": "INT64",
                                                           "data": [0, 1, 2]}]}
    exchange = Exchange("POST", "/v2/models/model/infer", {"id": "a"}, "application/json", 200, body)
    out = BY_NAME["wrong-datatype"].apply(exchange)
    assert out.body["outputs"][0]["datatype"] == "BYTES"
    assert exchange.body["outputs"][0]["datatype"] == "INT64"  # the input is not changed
    untouched = BY_NAME["wrong-datatype"].apply(Exchange("GET", "/v2/models/model", None, "", 200, {"name": "model"}))
    assert untouched.body == {"name": "model"}


def test_score_dicts_keep_their_wire_format():
    v1 = Exchange("POST", "/v1/models/model:predict", {}, "", 200, {"predictions": [[[{"0": "0.2500"}, {"1": "0.7500"}]]]})
    doubled = BY_NAME["fill-mask-probabilities-doubled"].apply(v1)
    assert doubled.body["predictions"] == [[[{"0": "0.5000"}, {"1": "1.0000"}]]]
    v2 = Exchange("POST", "/v2/models/model/infer", {}, "", 200,
                  {"outputs": [{"name": "output-0", "shape": [1], "datatype": "BYTES", "data": ["{0: 1.0, 1: 3.0}"]}]})
    soft = BY_NAME["logits-softmaxed"].apply(v2)
    scores = semantics.parse_score_dict(soft.body["outputs"][0]["data"][0], "x")
    assert abs(sum(scores.values()) - 1) < 1e-3 and scores[1] > scores[0]


def test_probability_sum_check_fails_for_doubled_or_zero_vocabularies():
    vocab = 30000
    peaked = {i: 0.0 for i in range(vocab)}
    peaked.update({0: 0.9, 1: 0.1})
    semantics.check_probabilities(peaked, "ok")
    with pytest.raises(semantics.Violation):
        semantics.check_probabilities({i: 2 * v for i, v in peaked.items()}, "doubled")
    with pytest.raises(semantics.Violation):
        semantics.check_probabilities({i: 0.0 for i in range(300)}, "zero")
    with pytest.raises(semantics.Violation):
        semantics.check_probabilities({0: 0.5, 1: 0.4}, "small label set, sum 0.9")
    semantics.check_probabilities({0: 0.3333, 1: 0.3333, 2: 0.3333}, "rounded thirds")


@pytest.mark.slow
def test_every_mutant_is_killed():
    """The whole catalogue against the suite: 100% killed, every baseline passes (about 10 minutes)."""
    from tests.conformance_meta.mutation_score import report_text, score

    result = score()
    assert not result["broken_baselines"], report_text(result)
    assert result["score"]["killed"] == result["score"]["total"], report_text(result)


def _grpc_answers() -> dict:
    """One serving server's answer to each rpc, as OIP messages."""
    from conformance.grpc_client import messages

    pb = messages()
    infer = pb.ModelInferResponse(model_name="model", id="a")
    infer.outputs.add(name="output-0", datatype="INT64", shape=[1, 3])
    infer.raw_output_contents.append(b"\x00" * 24)
    metadata = pb.ModelMetadataResponse(name="model", platform="workbench")
    metadata.inputs.add(name="input-0", datatype="BYTES", shape=[-1])
    metadata.outputs.add(name="output-0", datatype="INT64", shape=[-1, -1])
    return {
        "ServerLive": pb.ServerLiveResponse(live=True),
        "ServerReady": pb.ServerReadyResponse(ready=True),
        "ModelReady": pb.ModelReadyResponse(ready=True),
        "ServerMetadata": pb.ServerMetadataResponse(name="workbench", version="1"),
        "ModelMetadata": metadata,
        "ModelInfer": infer,
    }


def test_grpc_mutants_are_pure_and_each_breaks_something():
    """Each gRPC mutant has a function; `answer` breaks the rpc(s) it targets and leaves the others as they were,
    `error` rewrites only the status code it targets."""
    from tests.conformance_meta.mutants import GRPC_MUTANTS

    for mutant in GRPC_MUTANTS:
        assert mutant.breaks and (mutant.answer or mutant.error), mutant.name
        if mutant.answer is not None:
            broken = []
            for rpc, response in _grpc_answers().items():
                before = response.SerializeToString()
                status = mutant.answer(rpc, response)
                if status is not None or response.SerializeToString() != before:
                    broken.append(rpc)
            assert 1 <= len(broken) <= 2, (mutant.name, broken)
        if mutant.error is not None:
            codes = ("INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL")
            rewritten = [code for code in codes if mutant.error("ModelInfer", code, "why") != (code, "why")]
            assert len(rewritten) == 1, (mutant.name, rewritten)
    assert BY_NAME.keys().isdisjoint(catalogue.GRPC_BY_NAME)
