"""The suite passes against the built-in predictor in every task and mode (strict profile).

`pytest conformance` with no endpoint is the complete offline run: it builds tiny models, serves each
(task, mode) with `workbench serve` and checks it, differentially against the tiny model itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from conformance.semantics import TASKS, TEXT_EMBEDDING, task_modes
from tests.conformance_meta.suite_runner import REPO_ROOT, run_suite
from tests.conformance_meta.test_against_kserve_runtime import EMBEDDING_DIVERGENT_CHECKS


def test_offline_run_passes_every_task_and_mode(tmp_path):
    run = run_suite(tmp_path / "builtin.json")
    assert run.report["summary"]["failed"] == 0, run.describe()
    assert run.report["summary"]["known_divergences"] == 0, run.describe()
    assert run.returncode == 0, run.describe()
    targets = {c["target"] for c in run.report["checks"]}
    assert targets == {f"{task}-{mode}" for task in TASKS for mode in task_modes(task)}
    for target in targets:
        passed = {c["id"] for c in run.report["checks"] if c["target"] == target and c["outcome"] == "pass"}
        assert {"outputs_match_reference_model[v1]", "outputs_match_reference_model[v2]",
                "v1_and_v2_give_same_predictions", "v2_infer_element_count_matches_shape",
                "concurrent_requests_get_their_own_answers"} <= passed, (target, sorted(passed))
    print(f"\noffline run, {len(targets)} targets: {run.report['summary']} in {run.wall_s:.0f} s wall")


def test_workbench_conformance_runs_the_installed_suite():
    """`workbench conformance` collects the same checks (collect-only: no server is started)."""
    completed = subprocess.run([sys.executable, "-m", "workbench", "conformance", "--collect-only", "-q",
                                "--task", "sequence_classification", "--mode", "probabilities"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "test_v2_infer_echoes_request_id[sequence_classification-probabilities]" in completed.stdout


@pytest.mark.skipif(TEXT_EMBEDDING not in TASKS, reason="our predictor serves text_embedding from the embeddings "
                    "branch on (workbench.tasks.TASKS)")
def test_offline_text_embedding_run_passes_every_embedding_check(tmp_path):
    """Our predictor on a tiny BertModel: every text_embedding and OpenAI-route check passes, strict (KServe's
    divergences there are not ours to copy)."""
    run = run_suite(tmp_path / "embedding.json", "--task", "text_embedding")
    assert run.report["summary"]["failed"] == 0, run.describe()
    assert run.report["summary"]["known_divergences"] == 0, run.describe()
    passed = run.ids_with("pass")
    assert set().union(*EMBEDDING_DIVERGENT_CHECKS.values()) <= {c.split("[")[0] for c in passed}, run.describe()
    assert {"embeddings_have_unit_l2_norm[v1]", "embeddings_have_unit_l2_norm[v2]", "v2_embeddings_are_fp32",
            "text_alone_and_in_batch_agree[v2]", "openai_embeddings_response_schema",
            "openai_base64_embeddings_decode_to_the_float_answer", "openai_usage_counts_the_prompt_tokens",
            "openai_models_list_the_model", "outputs_match_reference_model[v1]"} <= passed, run.describe()


@pytest.mark.parametrize("task, mode", [("token_classification", "probabilities"), ("fill_mask", "logits")])
def test_onnxruntime_backend_passes_the_suite(tmp_path, task, mode):
    """`workbench serve --backend onnxruntime` (fp32) passes the same strict suite as the torch backend, checked
    against the tiny model itself in torch (--reference-model): the backend changes nothing a client sees."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    from workbench.tasks import MODE_FLAGS
    from workbench.testsupport.servers import served
    from workbench.testsupport.tiny_models import build_tiny_model

    model_dir = build_tiny_model(task, tmp_path / "model", seed=0)
    flags = (*MODE_FLAGS[mode], "--backend", "onnxruntime", "--onnx_cache_dir", str(tmp_path / "onnx"))
    with served(model_dir, *flags, timeout=300) as url:
        run = run_suite(tmp_path / "ort.json", "--endpoint", url, "--task", task, "--mode", mode,
                        "--reference-model", str(model_dir))
    assert run.report["summary"]["failed"] == 0, run.describe()
    assert run.report["summary"]["known_divergences"] == 0, run.describe()
    assert {"outputs_match_reference_model[v1]", "outputs_match_reference_model[v2]",
            "v1_and_v2_give_same_predictions"} <= run.ids_with("pass"), run.describe()
