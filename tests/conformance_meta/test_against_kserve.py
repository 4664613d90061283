"""The suite against a server nobody here wrote: KServe's own ModelServer (workbench.testsupport.kserve_modelserver).

Token classification in default and probabilities mode. Under `--profile kserve` KServe's known
defects are reported as known divergences with their reason and nothing fails; under `--profile
strict` exactly those checks fail.
"""

from __future__ import annotations

import pytest

from tests.conformance_meta.suite_runner import run_suite

KSERVE_DIVERGENCES = {
    "v2_malformed_json_is_400_with_error",        # 422 {"detail": [...]}
    "v2_missing_inputs_is_400_with_error",        # 422 {"detail": [...]}
    "v2_wrong_datatype_is_400_with_error",        # 500
    "v2_shape_data_mismatch_is_400_with_error",   # 200, answered
    "v1_missing_instances_is_400_with_error",     # 500 KeyError
    "v1_non_json_content_type_is_not_a_server_error",  # 500
    "v2_model_metadata_describes_tensors",        # inputs/outputs empty
    "v2_model_metadata_matches_infer_outputs",    # inputs/outputs empty
}
# KServe has no POST /models/{name}: the kserve profile says so (the entity checks skip), strict promises it
ENTITY_CHECKS = {
    *(f"entity_schema_for_every_strategy[{s}]" for s in ("none", "simple", "first", "average", "max")),
    "offsets_slice_back_to_word_with_mixed_case_and_punctuation", "strategies_are_consistent_with_each_other",
    "ignore_labels_filters_entities", "stride_reads_a_long_text_to_its_end",
    "kserve_routes_answer_the_same_entities[v1]", "kserve_routes_answer_the_same_entities[v2]",
    *(f"bad_parameters_are_400_with_error[{p}]" for p in ("unknown-strategy", "ignore-labels-not-a-list",
                                                          "stride-not-an-int", "stride-without-aggregation")),
    "unknown_model_is_404",
}
MUST_PASS = {
    "v1_models_list_contains_model", "v1_model_ready", "v1_predict_returns_one_prediction_per_instance",
    "v2_server_live", "v2_server_ready", "v2_server_metadata", "v2_model_metadata_schema", "v2_model_ready",
    "v2_infer_response_schema", "v2_infer_echoes_request_id", "v2_infer_element_count_matches_shape",
    "v2_infer_values_match_datatype", "v1_predictions_nesting_for_task_and_mode",
    "v2_output_datatype_and_shape_for_task_and_mode", "token_positions_equal_tokenized_length[v1]",
    "token_positions_equal_tokenized_length[v2]", "outputs_match_reference_model[v1]",
    "outputs_match_reference_model[v2]", "v1_and_v2_give_same_predictions",
    "concurrent_requests_get_their_own_answers", "v1_malformed_json_is_400_with_error",
    "v1_unknown_model_is_404_with_error", "v2_unknown_model_is_404_with_error",
}


@pytest.fixture(scope="module", params=["default", "probabilities"])
def kserve_endpoint(request, tiny_models):
    from conformance.target import server_command
    from workbench.testsupport.servers import free_port, served_command

    model_dir = tiny_models("token_classification")
    port = free_port()
    with served_command(server_command("kserve", model_dir, "model", request.param, port), port) as url:
        yield url, model_dir, request.param


def _run(endpoint, profile, tmp_path):
    url, model_dir, mode = endpoint
    return run_suite(tmp_path / f"kserve-{mode}-{profile}.json", "--endpoint", url, "--task", "token_classification",
                     "--mode", mode, "--reference-model", model_dir, "--profile", profile)


def test_kserve_profile_reports_known_divergences_not_failures(kserve_endpoint, tmp_path):
    run = _run(kserve_endpoint, "kserve", tmp_path)
    assert run.ids_with("fail") == set(), run.describe()
    assert run.ids_with("known-divergence") == KSERVE_DIVERGENCES, run.describe()
    for check in run.report["checks"]:
        if check["outcome"] == "known-divergence":
            assert "known divergence [kserve]" in check["reason"] and check["exchanges"], check
    missing = MUST_PASS - run.ids_with("pass")
    assert not missing, f"checks KServe should pass: {sorted(missing)}\n{run.describe()}"
    print(f"\nKServe {kserve_endpoint[2]}: {run.report['summary']}; passes {len(run.ids_with('pass'))} checks; "
          f"known divergences: {sorted(run.ids_with('known-divergence'))}")


def test_strict_profile_fails_exactly_the_divergences(kserve_endpoint, tmp_path):
    run = _run(kserve_endpoint, "strict", tmp_path)
    assert run.ids_with("fail") == KSERVE_DIVERGENCES | ENTITY_CHECKS, run.describe()
    assert run.ids_with("known-divergence") == set(), run.describe()
    assert run.returncode != 0
