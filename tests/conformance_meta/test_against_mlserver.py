"""The suite against MLServer with mlserver-huggingface, a V2 server nobody here wrote, at level `protocol`
under `--profile mlserver`. MLServer does not claim KServe's output layout, so only the protocol checks apply;
they must run (preflight finds the declared input name) and fail only where MLServer breaks the protocol."""

from __future__ import annotations

import pytest

from tests.foreign_servers import require
from tests.conformance_meta.suite_runner import run_suite
from workbench.testsupport.mlserver_runtime import missing_reason

# What mlserver-huggingface 1.7.1 gets wrong at the protocol level, so the suite must report it as failures:
# it answers an INT64 input holding strings, and a shape [3] holding one element, with 200 (it validates
# neither), and its metadata declares an output "outputs" while inference returns one named "output".
EXPECTED_FAILURES = {"v2_wrong_datatype_is_400_with_error", "v2_shape_data_mismatch_is_400_with_error",
                     "v2_model_metadata_matches_infer_outputs"}


@pytest.fixture(scope="module")
def mlserver_endpoint(tiny_models):
    require(missing_reason(), "WORKBENCH_REQUIRE_MLSERVER")
    from workbench.testsupport.mlserver_runtime import served_mlserver

    with served_mlserver(tiny_models("sequence_classification"), "sequence_classification") as url:
        yield url


def test_protocol_level_against_mlserver(mlserver_endpoint, tmp_path):
    run = run_suite(tmp_path / "mlserver.json", "--endpoint", mlserver_endpoint, "--protocol", "v2",
                    "--level", "protocol", "--profile", "mlserver", "--task", "sequence_classification")
    assert run.ids_with("fail") == EXPECTED_FAILURES, run.describe()
    assert {"v2_infer_response_schema", "v2_infer_echoes_request_id", "v2_infer_element_count_matches_shape",
            "v2_server_metadata", "v2_model_metadata_schema", "v2_unknown_model_is_404_with_error"} \
        <= run.ids_with("pass"), run.describe()
    assert {"v2_server_live", "v2_model_ready"} <= run.ids_with("known-divergence"), run.describe()
