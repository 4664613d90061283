"""The suite against KServe's real Hugging Face runtime (huggingfaceserver), served by the suite itself
(`--serve-with kserve-runtime`): under `--profile kserve` nothing fails and the known divergences are exactly
the checks that meet a `kserve` entry of conformance.profiles.DIVERGENCES; under `strict` exactly those fail."""

from __future__ import annotations

import pytest

from tests.foreign_servers import require
from tests.conformance_meta.suite_runner import run_suite
from workbench.testsupport.kserve_runtime import missing_reason

# The checks that meet each kserve divergence key (what the real runtime answers is in the reason).
DIVERGENT_CHECKS = {
    "v2-malformed-json": {"v2_malformed_json_is_400_with_error"},
    "v2-missing-inputs": {"v2_missing_inputs_is_400_with_error"},
    "v2-wrong-datatype": {"v2_wrong_datatype_is_400_with_error"},
    "v2-shape-data-mismatch": {"v2_shape_data_mismatch_is_400_with_error"},
    "v1-missing-instances": {"v1_missing_instances_is_400_with_error"},
    "v1-non-json-content-type": {"v1_non_json_content_type_is_not_a_server_error"},
    "v2-model-metadata-tensors": {"v2_model_metadata_describes_tensors", "v2_model_metadata_matches_infer_outputs"},
    # the runtime lacks POST /models/{name}: under kserve the entity checks skip (no divergence outcome);
    # under strict they fail, for token classification only
    "hf-entity-route": set(),
}
ALL_DIVERGENT = set().union(*DIVERGENT_CHECKS.values())
# text_embedding's own (tests/conformance_meta/test_against_kserve_embeddings.py): the other tasks skip these checks
EMBEDDING_DIVERGENT_CHECKS = {
    "v2-embedding-fp32": {"v2_embeddings_are_fp32"},
    "openai-embeddings-object": {"openai_embeddings_response_object_is_list"},
    "openai-default-encoding-format": {"openai_encoding_format_defaults_to_float"},
    "openai-token-ids": {"openai_token_id_input_is_refused_with_an_openai_error"},
    "openai-malformed-json": {"openai_malformed_json_is_4xx_with_an_openai_error"},
    "openai-missing-input": {"openai_missing_input_is_4xx_with_an_openai_error"},
    "openai-unknown-model": {"openai_unknown_model_is_404_with_an_openai_error"},
}


@pytest.fixture(scope="module", autouse=True)
def runtime_installed():
    require(missing_reason(), "WORKBENCH_REQUIRE_KSERVE_RUNTIME")


def test_the_divergent_checks_cover_every_kserve_divergence():
    from conformance.profiles import profile_keys
    from tests.conformance_meta.test_grpc_checks import KSERVE_RUNTIME_GRPC_DIVERGENT  # the gRPC checks' keys

    assert set(DIVERGENT_CHECKS) | set(EMBEDDING_DIVERGENT_CHECKS) | set(KSERVE_RUNTIME_GRPC_DIVERGENT) \
        == set(profile_keys("kserve"))
    assert not set(DIVERGENT_CHECKS) & set(EMBEDDING_DIVERGENT_CHECKS)
    assert not (set(DIVERGENT_CHECKS) | set(EMBEDDING_DIVERGENT_CHECKS)) & set(KSERVE_RUNTIME_GRPC_DIVERGENT)


@pytest.mark.parametrize("task", ["token_classification", "fill_mask"])
def test_kserve_profile_passes_the_real_runtime_with_named_divergences(tmp_path, task):
    run = run_suite(tmp_path / "runtime.json", "--serve-with", "kserve-runtime", "--profile", "kserve", "--task", task)
    assert run.ids_with("fail") == set(), run.describe()
    divergent = {c["id"].split("[")[0] for c in run.report["checks"] if c["outcome"] == "known-divergence"}
    assert divergent <= ALL_DIVERGENT, run.describe()
    assert "v2_model_metadata_describes_tensors" in divergent, run.describe()
    assert len(run.ids_with("pass")) >= 30, run.describe()


def test_strict_profile_fails_exactly_the_divergent_checks(tmp_path):
    run = run_suite(tmp_path / "strict.json", "--serve-with", "kserve-runtime", "--profile", "strict",
                    "--task", "sequence_classification", "--mode", "probabilities")
    failed = {c["id"].split("[")[0] for c in run.report["checks"] if c["outcome"] == "fail"}
    assert failed == ALL_DIVERGENT, run.describe()  # sequence classification: no entity checks
    assert run.returncode != 0
