"""The suite catches breakage: each deliberately wrong server makes the right named checks fail.

One real predictor (tiny token-classification model, default mode) sits behind one mutant proxy
(tests/conformance_meta/mutant_proxy.py); the proxy's mutation is switched between suite runs. These are a
few important mutants, fast; the whole catalogue (tests/conformance_meta/mutants.py, every task and mode)
is scored by tests/conformance_meta/mutation_score.py (test_mutation_score.py, marked slow).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from tests.conformance_meta.suite_runner import run_suite

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
