"""The gate for real: train (tiny model, 2 steps), serve, run the conformance suite and bench, decide.

Everything runs as in CI: train/ner.py, `workbench serve`, `workbench conformance` and `workbench bench`
in their own processes; a broken endpoint is the conformance engineer's mutant proxy
(tests/conformance_meta/mutant_proxy.py) in front of a real predictor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from workbench.gate import main as gate_main

MUTANT_PROXY = Path(__file__).resolve().parents[1] / "conformance_meta" / "mutant_proxy.py"

# Lenient: a tiny model after two steps scores ~0 F1. Only the default mode, no reference model and a
# tiny bench keep the run short; the default gate.yaml runs more.
LENIENT = """\
f1:
  overall: 0.0
conformance:
  modes: [default]
  reference_model: false
bench:
  enabled: true
  concurrency: [1]
  requests: 5
  max_errors: 0
train:
  max_train_steps: 2
  max_train_samples: 64
  max_eval_samples: 32
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def passing_run(tiny_models, tmp_path_factory):
    """One full gate run on a tiny model: (exit code, workdir, summary text)."""
    tmp = tmp_path_factory.mktemp("gate-pass")
    config = write(tmp / "gate.yaml", LENIENT)
    workdir, summary = tmp / "work", tmp / "summary.md"
    code = gate_main(["--config", str(config), "--workdir", str(workdir), "--summary", str(summary),
                      "--model_name_or_path", tiny_models("token_classification")])
    return code, workdir, summary.read_text(encoding="utf-8")


def test_gate_passes_on_a_good_model(passing_run):
    code, workdir, summary = passing_run
    assert code == 0, summary
    assert summary.startswith("# Workbench gate: ✅ PASSED")
    assert "| F1 | overall |" in summary and "| conformance | mode default |" in summary
    assert "| bench | failed requests | 0 |" in summary and "## Timings" in summary
    results = json.loads((workdir / "gate-results.json").read_text())
    assert results["decision"] == {"passed": True, "reasons": []}
    assert results["conformance"][0]["summary"]["failed"] == 0 and results["conformance"][0]["summary"]["passed"] > 20
    assert (workdir / "model" / "results.json").exists() and (workdir / "gate-summary.md").read_text() == summary


def test_gate_fails_when_f1_is_below_the_floor(passing_run, tmp_path, monkeypatch):
    """Same trained model (--model-dir), a floor it cannot reach: exit 1 and the reason in the summary."""
    _, workdir, _ = passing_run
    config = write(tmp_path / "strict.yaml", "f1:\n  overall: 0.99\n  per_entity:\n    PER: 0.95\n"
                                             "conformance:\n  enabled: false\n")
    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    code = gate_main(["--config", str(config), "--workdir", str(tmp_path / "work"),
                      "--model-dir", str(workdir / "model")])
    summary = (tmp_path / "work" / "gate-summary.md").read_text()
    assert code == 1, summary
    assert summary.startswith("# Workbench gate: ❌ FAILED")
    reasons = summary.split("## Thresholds")[0]
    assert "- F1 overall:" in reasons and "(required >= 0.990)" in reasons and "- F1 PER:" in reasons
    assert step_summary.read_text().strip() == summary.strip()  # what GitHub Actions would post


@pytest.fixture(scope="module")
def mutant_endpoint(tiny_models):
    """A real predictor behind the mutant proxy; yields the proxy's URL."""
    from workbench.testsupport.servers import free_port, served, served_command

    with served(tiny_models("token_classification")) as upstream:
        port = free_port()
        command = [sys.executable, str(MUTANT_PROXY), "--upstream", upstream, "--port", str(port)]
        with served_command(command, port) as url:
            yield url


def test_post_deployment_gate_fails_on_a_broken_endpoint(mutant_endpoint, tmp_path):
    assert httpx.put(f"{mutant_endpoint}/__mutation/wrong-shape").status_code == 200
    config = write(tmp_path / "gate.yaml", "f1:\n  overall: 0.5\nconformance:\n  modes: [default]\n")
    code = gate_main(["--config", str(config), "--workdir", str(tmp_path / "work"),
                      "--endpoint", mutant_endpoint, "--model-name", "model"])
    summary = (tmp_path / "work" / "gate-summary.md").read_text()
    assert code == 1, summary
    reasons = summary.split("## Thresholds")[0]
    assert "conformance mode default:" in reasons and "v2_infer_element_count_matches_shape" in reasons, summary
    assert "| F1 | overall | not measured |" in summary and "➖ not measured" in summary
    assert f"Deployed endpoint `{mutant_endpoint}`" in summary


def test_post_deployment_gate_fails_when_too_few_checks_ran(mutant_endpoint, tmp_path):
    """A healthy endpoint, but the config wants more checks run than this one runs: the gate fails and says so."""
    assert httpx.put(f"{mutant_endpoint}/__mutation/none").status_code == 200
    config = write(tmp_path / "gate.yaml", "conformance:\n  modes: [default]\n  min_passed: 500\n"
                                           "  max_skipped_fraction: 0.01\n")
    code = gate_main(["--config", str(config), "--workdir", str(tmp_path / "work"),
                      "--endpoint", mutant_endpoint, "--model-name", "model"])
    summary = (tmp_path / "work" / "gate-summary.md").read_text()
    assert code == 1, summary
    reasons = summary.split("## Thresholds")[0]
    assert "- conformance mode default checks passed:" in reasons and "too few checks ran" in reasons, summary
    assert "(required >= 500 passed)" in reasons and "most for '" in reasons, summary
    assert "- conformance mode default checks skipped:" in reasons and "(required <= 1% skipped)" in reasons, summary
    assert "| conformance | mode default | " in summary and "0 failed" in summary  # nothing failed, yet no pass
    results = json.loads((tmp_path / "work" / "gate-results.json").read_text())
    assert results["conformance"][0]["skip_reasons"], results["conformance"][0]


def test_post_deployment_gate_against_nothing_says_it_cannot_reach_it(tmp_path):
    config = write(tmp_path / "gate.yaml", "conformance:\n  modes: [default]\n")
    code = gate_main(["--config", str(config), "--workdir", str(tmp_path / "work"), "--endpoint", "http://localhost:1"])
    summary = (tmp_path / "work" / "gate-summary.md").read_text()
    assert code == 1, summary
    reasons = summary.split("## Thresholds")[0]
    assert ("- conformance mode default: did not complete: the suite stopped before any check: "
            "cannot reach http://localhost:1: connection refused") in reasons, summary


@pytest.mark.parametrize("argv, message", [
    (["--endpoint", "http://x", "--model-dir", "m"], "give one of them"),
    (["--endpoint", "http://x", "--num_train_epochs", "2"], "--num_train_epochs is a training option"),
    (["--mode", "probabilities"], "apply to a deployed service"),
    (["--model-dir", "/nonexistent"], "no config.json"),
])
def test_usage_errors_exit_2(argv, message, capsys, tmp_path):
    assert gate_main(argv + ["--workdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_config_errors_exit_2_naming_the_key(tmp_path, capsys):
    config = write(tmp_path / "gate.yaml", "f1:\n  overal: 0.5\n")
    assert gate_main(["--config", str(config), "--workdir", str(tmp_path)]) == 2
    assert "f1.overal: unknown key" in capsys.readouterr().err


def load_fake_kube_api():
    """tests/k8s/conftest.py's FakeKubeAPI (a local HTTP server standing in for a cluster), loaded by path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "k8s" / "conftest.py"
    spec = importlib.util.spec_from_file_location("gate_fake_kube_api", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FakeKubeAPI


def test_post_deployment_gate_passes_through_an_inference_service(mutant_endpoint, passing_run, tmp_path,
                                                                   monkeypatch):
    """--isvc: discovery through the real kubernetes client (stand-in API server); --results checks F1."""
    from workbench.k8s.examples import EXAMPLES

    assert httpx.put(f"{mutant_endpoint}/__mutation/none").status_code == 200
    api = load_fake_kube_api()().start()
    try:
        isvc = next(d for d in EXAMPLES["bert-ner-v2"].documents() if d["kind"] == "InferenceService")
        api.add_isvc(isvc, namespace="models")
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        config = write(tmp_path / "gate.yaml", "f1:\n  overall: 0.0\nconformance:\n  modes: [default]\n"
                                               "bench:\n  enabled: true\n  concurrency: [1]\n  requests: 5\n")
        name = isvc["metadata"]["name"]
        code = gate_main(["--config", str(config), "--workdir", str(tmp_path / "work"), "--isvc", name,
                          "--namespace", "models", "--ingress", mutant_endpoint.removeprefix("http://"),
                          "--model-name", "model", "--results", str(passing_run[1] / "model" / "results.json")])
    finally:
        api.stop()
    summary = (tmp_path / "work" / "gate-summary.md").read_text()
    assert code == 0, summary
    assert f"(InferenceService models/{name})" in summary and f"Host `{name}.models.example.com`" in summary
    assert "| F1 | overall |" in summary and "not measured" not in summary
