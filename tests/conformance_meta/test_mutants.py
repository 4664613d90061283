"""The suite catches breakage: each deliberately wrong server makes the right named checks fail.

One real predictor (tiny token-classification model, default mode) sits behind one mutant proxy
(tests/conformance_meta/mutant_proxy.py); the proxy's mutation is switched between suite runs. These are a
few important mutants, fast; the whole catalogue (tests/conformance_meta/mutants.py, every task and mode)
is scored by tests/conformance_meta/mutation_score.py (test_mutation_score.py, marked slow).

text_embedding: KServe's real runtime serving a tiny BertModel sits behind a second proxy; the suite runs under
--profile kserve (its known divergences are no kill) and only the modules that check embeddings, so each mutant
costs a few seconds. Our predictor serving the same tiny BertModel sits behind a third, under strict: the checks
that are known divergences on KServe's runtime (FP64 V2 embeddings, OpenAI error shapes) kill mutants there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from tests.conformance_meta.suite_runner import run_suite
from tests.foreign_servers import require

PROXY = Path(__file__).with_name("mutant_proxy.py")

# mutation -> checks that must fail (by check id) when the suite runs against it
MUST_FAIL = {
    "wrong-shape": {"v2_infer_element_count_matches_shape", "v2_output_datatype_and_shape_for_task_and_mode"},
    "wrong-datatype": {"v2_infer_values_match_datatype", "v2_output_datatype_and_shape_for_task_and_mode"},
    "swapped-labels": {"outputs_match_reference_model[v1]", "outputs_match_reference_model[v2]",
                       "outputs_match_golden_expectations[v1]", "outputs_match_golden_expectations[v2]"},
    "lost-id": {"v2_infer_echoes_request_id", "concurrent_requests_get_their_own_answers"},
    "mixed-concurrent": {"concurrent_requests_get_their_own_answers", "concurrent_v1_requests_get_their_own_answers"},
    "error-500": {"v2_malformed_json_is_400_with_error", "v2_missing_inputs_is_400_with_error",
                  "v2_wrong_datatype_is_400_with_error", "v2_shape_data_mismatch_is_400_with_error",
                  "v2_unknown_model_is_404_with_error", "v1_malformed_json_is_400_with_error",
                  "v1_missing_instances_is_400_with_error", "v1_unknown_model_is_404_with_error"},
    "ragged-rows": {"v1_predictions_nesting_for_task_and_mode"},
    # the checks that used to pass on these (empty outputs, a missing entity route, metadata never compared)
    "v2-empty-outputs": {"v2_infer_response_schema", "v2_infer_outputs_well_formed",
                         "v2_infer_element_count_matches_shape", "v2_infer_values_match_datatype"},
    "hf-route-missing": {"entity_schema_for_every_strategy[simple]", "stride_reads_a_long_text_to_its_end",
                         "kserve_routes_answer_the_same_entities[v1]", "kserve_routes_answer_the_same_entities[v2]"},
    "v2-metadata-output-datatype": {"v2_model_metadata_matches_infer_outputs"},
    "form-content-type-junk": {"v1_non_json_content_type_is_not_a_server_error"},
    "hf-stride-truncated": {"stride_reads_a_long_text_to_its_end"},
}


@pytest.fixture(scope="module")
def mutant_endpoint(tiny_models, tmp_path_factory):
    """(proxy URL, model dir, golden file) with the proxy in front of the built-in predictor."""
    from conformance.golden import golden_case_from_reference
    from conformance.reference import ReferenceModel
    from conformance.target import SAMPLE_TEXTS
    from workbench.testsupport.servers import free_port, served, served_command

    model_dir = tiny_models("token_classification")
    golden = tmp_path_factory.mktemp("golden") / "tiny.json"
    reference = ReferenceModel(model_dir, "token_classification")
    golden.write_text(json.dumps({"cases": [golden_case_from_reference(
        reference, "tiny-ner-1", "tiny/ner", "default", SAMPLE_TEXTS[:2], model_names=["model"])]}))
    with served(model_dir) as upstream:
        port = free_port()
        command = [sys.executable, str(PROXY), "--upstream", upstream, "--port", str(port)]
        with served_command(command, port) as url:
            yield url, model_dir, golden


def run_against(endpoint, mutation: str, tmp_path: Path):
    url, model_dir, golden = endpoint
    assert httpx.put(f"{url}/__mutation/{mutation}").status_code == 200
    return run_suite(tmp_path / f"{mutation}.json", "--endpoint", url, "--task", "token_classification",
                     "--mode", "default", "--reference-model", model_dir, "--expect", str(golden))


def test_transparent_proxy_passes_everything(mutant_endpoint, tmp_path):
    run = run_against(mutant_endpoint, "none", tmp_path)
    assert run.report["summary"]["failed"] == 0, run.describe()
    assert run.outcomes("outputs_match_golden_expectations[v1]") == {"pass"}, run.describe()
    print(f"full suite against one local endpoint: {run.wall_s:.1f} s wall "
          f"({run.report['summary']['duration_s']} s inside pytest)")


@pytest.mark.parametrize("mutation", sorted(MUST_FAIL))
def test_mutant_is_caught_by_the_right_checks(mutant_endpoint, tmp_path, mutation):
    run = run_against(mutant_endpoint, mutation, tmp_path)
    failed = run.ids_with("fail")
    missing = MUST_FAIL[mutation] - failed
    assert not missing, f"mutant {mutation!r} not caught by {sorted(missing)}; failed: {sorted(failed)}\n{run.describe()}"
    assert run.returncode != 0


def test_openai_checks_skip_where_the_endpoint_serves_no_openai_routes(mutant_endpoint, tmp_path):
    """Our predictor (no /openai routes on this branch), checked as text_embedding: the OpenAI checks skip, saying why."""
    url, _, _ = mutant_endpoint
    assert httpx.put(f"{url}/__mutation/none").status_code == 200
    if httpx.get(f"{url}/openai/v1/models").status_code != 404:
        pytest.skip("this predictor serves /openai routes")
    run = run_suite(tmp_path / "no-openai.json", "--endpoint", url, "--task", "text_embedding", "-k", "openai")
    openai = [c for c in run.report["checks"] if c["id"].startswith("openai_")]
    assert len(openai) >= 10, run.describe()
    assert {c["outcome"] for c in openai} == {"skip"}, run.describe()
    assert all("GET /openai/v1/models answered 404" in c["reason"] for c in openai), run.describe()


# text_embedding mutation -> checks that must fail (against KServe's runtime, --profile kserve)
EMBEDDING_MUST_FAIL = {
    "emb-v1-flattened": {"v1_predictions_nesting_for_task_and_mode", "embeddings_have_unit_l2_norm[v1]"},
    "emb-v2-shape-flat": {"v2_output_datatype_and_shape_for_task_and_mode", "v2_embeddings_are_fp32"},
    "emb-v2-dimension-short": {"embedding_dimension_is_the_same_for_every_request", "v1_and_v2_give_same_predictions"},
    "emb-v2-int64": {"v2_output_datatype_and_shape_for_task_and_mode", "v2_embeddings_are_fp32"},
    "emb-v2-fp16": {"v2_embeddings_are_fp32"},
    "emb-not-normalised": {"embeddings_have_unit_l2_norm[v1]", "embeddings_have_unit_l2_norm[v2]",
                           "outputs_match_reference_model[v1]"},
    "emb-batch-dependent": {"text_alone_and_in_batch_agree[v1]", "text_alone_and_in_batch_agree[v2]"},
    "emb-nondeterministic": {"repeated_requests_are_deterministic[v1]", "repeated_requests_are_deterministic[v2]"},
    "emb-constant": {"different_texts_get_different_embeddings[v1]", "different_texts_get_different_embeddings[v2]"},
    "openai-data-out-of-order": {"openai_embeddings_response_schema"},
    "openai-data-reindexed": {"openai_embeddings_equal_the_v1_v2_answers"},
    "openai-missing-usage": {"openai_embeddings_response_schema", "openai_usage_counts_the_prompt_tokens"},
    "openai-usage-off-by-one": {"openai_usage_counts_the_prompt_tokens"},
    "openai-model-not-echoed": {"openai_embeddings_response_schema"},
    "openai-object-missing": {"openai_embeddings_response_object_is_list"},
    "openai-base64-big-endian": {"openai_base64_embeddings_decode_to_the_float_answer"},
    "openai-other-vectors": {"openai_embeddings_equal_the_v1_v2_answers"},
    "openai-string-input-refused": {"openai_string_input_is_one_embedding"},
    "openai-default-base64": {"openai_encoding_format_defaults_to_float"},
    "openai-errors-answered": {"openai_token_id_input_is_refused_with_an_openai_error[ids]",
                               "openai_token_id_input_is_refused_with_an_openai_error[id-lists]",
                               "openai_malformed_json_is_4xx_with_an_openai_error",
                               "openai_missing_input_is_4xx_with_an_openai_error",
                               "openai_unknown_model_is_404_with_an_openai_error"},
    "openai-models-empty": {"openai_models_list_the_model"},
}
EMBEDDING_MODULES = "test_embeddings or test_openai_embeddings or test_task_semantics or test_consistency or test_outputs"


@pytest.fixture(scope="module")
def embedding_mutant_endpoint(tiny_models):
    """(proxy URL, model dir): the proxy in front of KServe's runtime serving a tiny BertModel."""
    from workbench.testsupport.kserve_runtime import missing_reason, served_runtime
    from workbench.testsupport.servers import free_port, served_command

    require(missing_reason(), "WORKBENCH_REQUIRE_KSERVE_RUNTIME")
    model_dir = tiny_models("text_embedding")
    with served_runtime(model_dir, "--task", "text_embedding") as upstream:
        port = free_port()
        command = [sys.executable, str(PROXY), "--upstream", upstream, "--port", str(port)]
        with served_command(command, port) as url:
            yield url, model_dir


def run_embedding_suite(endpoint, mutation: str, tmp_path: Path, selection: str):
    url, model_dir = endpoint
    assert httpx.put(f"{url}/__mutation/{mutation}").status_code == 200
    return run_suite(tmp_path / f"{mutation}.json", "--endpoint", url, "--task", "text_embedding", "--profile", "kserve",
                     "--reference-model", model_dir, "-k", selection)


def test_transparent_proxy_passes_the_embedding_checks(embedding_mutant_endpoint, tmp_path):
    run = run_embedding_suite(embedding_mutant_endpoint, "none", tmp_path, EMBEDDING_MODULES)
    assert run.ids_with("fail") == set(), run.describe()
    must_fail = set().union(*EMBEDDING_MUST_FAIL.values())
    assert must_fail <= run.ids_with("pass") | run.ids_with("known-divergence"), run.describe()


@pytest.mark.parametrize("mutation", sorted(EMBEDDING_MUST_FAIL))
def test_embedding_mutant_is_caught_by_the_right_checks(embedding_mutant_endpoint, tmp_path, mutation):
    """Only the named checks run (a few seconds each): each must fail."""
    selection = " or ".join(sorted({check.split("[")[0] for check in EMBEDDING_MUST_FAIL[mutation]}))
    run = run_embedding_suite(embedding_mutant_endpoint, mutation, tmp_path, selection)
    missing = EMBEDDING_MUST_FAIL[mutation] - run.ids_with("fail")
    assert not missing, f"mutant {mutation!r} not caught by {sorted(missing)}; failed: {sorted(run.ids_with('fail'))}\n" \
                        f"{run.describe()}"


# text_embedding mutation -> checks that must fail (against our predictor, strict)
OWN_EMBEDDING_MUST_FAIL = {
    "emb-v2-fp64": {"v2_embeddings_are_fp32"},
    "openai-object-embedding": {"openai_embeddings_response_object_is_list"},
    "openai-default-format-500": {"openai_encoding_format_defaults_to_float"},
    "openai-default-format-base64": {"openai_encoding_format_defaults_to_float"},
    "openai-token-ids-embedded": {"openai_token_id_input_is_refused_with_an_openai_error[ids]",
                                  "openai_token_id_input_is_refused_with_an_openai_error[id-lists]"},
    "openai-token-ids-500": {"openai_token_id_input_is_refused_with_an_openai_error[ids]",
                             "openai_token_id_input_is_refused_with_an_openai_error[id-lists]"},
    "openai-malformed-json-422": {"openai_malformed_json_is_4xx_with_an_openai_error"},
    "openai-missing-input-500": {"openai_missing_input_is_4xx_with_an_openai_error"},
    "openai-unknown-model-answered": {"openai_unknown_model_is_404_with_an_openai_error"},
    "openai-unknown-model-plain-error": {"openai_unknown_model_is_404_with_an_openai_error"},
}


@pytest.fixture(scope="module")
def own_embedding_mutant_endpoint(tiny_models):
    """(proxy URL, model dir): the proxy in front of our predictor serving a tiny BertModel as text_embedding."""
    from workbench.testsupport.servers import free_port, served, served_command

    model_dir = tiny_models("text_embedding")
    with served(model_dir, "--task", "text_embedding") as upstream:
        port = free_port()
        command = [sys.executable, str(PROXY), "--upstream", upstream, "--port", str(port)]
        with served_command(command, port) as url:
            yield url, model_dir


def run_own_embedding_suite(endpoint, mutation: str, tmp_path: Path, selection: str):
    url, model_dir = endpoint
    assert httpx.put(f"{url}/__mutation/{mutation}").status_code == 200
    return run_suite(tmp_path / f"{mutation}.json", "--endpoint", url, "--task", "text_embedding", "--profile", "strict",
                     "--reference-model", model_dir, "-k", selection)


def own_selection(checks: set[str]) -> str:
    return " or ".join(sorted({check.split("[")[0] for check in checks}))


def test_transparent_proxy_passes_the_strict_embedding_checks(own_embedding_mutant_endpoint, tmp_path):
    """The checks the mutants below must fail pass, strict, on our predictor (none is skipped or diverges)."""
    must_fail = set().union(*OWN_EMBEDDING_MUST_FAIL.values())
    run = run_own_embedding_suite(own_embedding_mutant_endpoint, "none", tmp_path, own_selection(must_fail))
    assert run.ids_with("fail") == set(), run.describe()
    assert must_fail <= run.ids_with("pass"), run.describe()


@pytest.mark.parametrize("mutation", sorted(OWN_EMBEDDING_MUST_FAIL))
def test_own_embedding_mutant_is_caught_by_the_right_checks(own_embedding_mutant_endpoint, tmp_path, mutation):
    """Only the named checks run (a few seconds each), strict: each must fail."""
    run = run_own_embedding_suite(own_embedding_mutant_endpoint, mutation, tmp_path,
                                  own_selection(OWN_EMBEDDING_MUST_FAIL[mutation]))
    missing = OWN_EMBEDDING_MUST_FAIL[mutation] - run.ids_with("fail")
    assert not missing, f"mutant {mutation!r} not caught by {sorted(missing)}; failed: {sorted(run.ids_with('fail'))}\n" \
                        f"{run.describe()}"
