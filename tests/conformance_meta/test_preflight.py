"""Preflight and levels: the suite stops with one line when there is nothing to check, selects checks by
level, refuses a check without a level, and names each check with its own parameters.

Pure parts with fake servers (a function answering (method, path)); then the suite as a user runs it,
against localhost:1, a real built-in predictor asked for a model it does not serve, and a small
stand-in server whose metadata does not tell the task.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from conformance.preflight import PreflightError, connection_problem, probe, served_names, task_from_metadata
from conformance.report import check_id, counts_by_level, render_markdown
from tests.conformance_meta.suite_runner import CONFORMANCE_DIR, REPO_ROOT, run_suite


def fake_server(routes: dict[tuple[str, str], tuple[int, object]]):
    """A `request(method, path)` answering from `routes`; anything else is 404."""
    def request(method: str, path: str) -> httpx.Response:
        status, body = routes.get((method, path), (404, {"error": "not found"}))
        return httpx.Response(status, json=body, request=httpx.Request(method, f"http://fake{path}"))
    return request


def refused(method: str, path: str) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=httpx.Request(method, f"http://x{path}"))


# ------------------------------------------------------------------------------------------ pure

def test_unreachable_endpoint_is_one_line_with_url_and_reason():
    with pytest.raises(PreflightError) as caught:
        probe(refused, "http://localhost:1", "model", ("v1", "v2"))
    assert str(caught.value) == "cannot reach http://localhost:1: connection refused (GET /v2/health/live)"
    with pytest.raises(PreflightError, match=r"cannot reach http://h \(Host: m\.ns\.example\.com\): connection refused"):
        probe(refused, "http://h", "model", ("v1",), host_header="m.ns.example.com")


def test_connection_problem_is_short():
    timeout = httpx.ReadTimeout("timed out", request=httpx.Request("GET", "http://x"))
    assert connection_problem(timeout) == "timed out (ReadTimeout)"
    dns = httpx.ConnectError("[Errno -2] Name or service not known")
    assert connection_problem(dns) == "name or service not known"


def test_unknown_model_names_the_served_models():
    server = fake_server({("GET", "/v2/health/live"): (200, {"live": True}),
                          ("GET", "/v1/models"): (200, {"models": ["ner", "sst2"]})})
    with pytest.raises(PreflightError) as caught:
        probe(server, "http://h", "bert", ("v1", "v2"))
    message = str(caught.value)
    assert message.startswith("model 'bert' is not served by http://h (GET /v2/models/bert -> 404, "
                              "GET /v1/models/bert -> 404); it serves 'ner', 'sst2'"), message
    assert "--model-name" in message and "\n" not in message


def test_unknown_model_from_the_v2_repository_index_or_not_listed():
    index = fake_server({("GET", "/v2/health/live"): (200, {"live": True}),
                         ("POST", "/v2/repository/index"): (200, [{"name": "a", "state": "READY"}, {"name": "b"}])})
    with pytest.raises(PreflightError, match="it serves 'a', 'b'"):
        probe(index, "http://h", "bert", ("v2",))
    bare = fake_server({("GET", "/v2/health/live"): (200, {"live": True}),
                        ("GET", "/v2/models/bert"): (400, {"error": "Request for unknown model"})})
    with pytest.raises(PreflightError) as caught:
        probe(bare, "http://h", "bert", ("v2",))
    assert "GET /v2/models/bert -> 400" in str(caught.value)
    assert "no model names could be listed (GET /v1/models: 404; POST /v2/repository/index: 404)" in str(caught.value)
    assert served_names(fake_server({("GET", "/v1/models"): (200, {"models": []})}))[0] == []


def test_a_model_known_on_one_protocol_or_not_ready_yet_is_not_stopped():
    one = fake_server({("GET", "/v2/health/live"): (200, {"live": True}),
                       ("GET", "/v2/models/m"): (200, {"name": "m", "parameters": {"task": "fill_mask",
                                                                                   "mode": "logits"}})})
    findings = probe(one, "http://h", "m", ("v1", "v2"))  # V1 404 (not served), V2 knows the model
    assert (findings.task, findings.mode) == ("fill_mask", "logits")
    loading = fake_server({("GET", "/v2/health/live"): (200, {"live": True}),
                           ("GET", "/v2/models/m"): (503, {"error": "loading"})})
    assert probe(loading, "http://h", "m", ("v2",)).task is None  # the checks say what is wrong


def test_task_comes_only_from_metadata_that_names_a_known_task():
    assert task_from_metadata({"parameters": {"task": "token_classification"}}) == "token_classification"
    assert task_from_metadata({"parameters": {"task": "text-generation"}}) is None
    assert task_from_metadata({"platform": "pytorch"}) is None and task_from_metadata(None) is None
    v1_only = fake_server({("GET", "/v1/models"): (200, {"models": ["m"]}),
                           ("GET", "/v1/models/m"): (200, {"name": "m", "ready": True}),
                           ("GET", "/v2/models/m"): (200, {"parameters": {"task": "sequence_classification"}})})
    assert probe(v1_only, "http://h", "m", ("v1",)).task == "sequence_classification"


def item(name: str, target_id: str | None, **params):
    """A stand-in for a collected check: the name pytest gives it and its callspec."""
    if target_id is None and not params:
        return SimpleNamespace(originalname=name, name=name)
    ids = ([target_id] if target_id else []) + [str(v) for v in params.values()]
    if target_id:
        params = {"target": SimpleNamespace(id=target_id), **params}
    callspec = SimpleNamespace(params=params, id="-".join(ids))
    return SimpleNamespace(originalname=name, name=f"{name}[{callspec.id}]", callspec=callspec)


def test_check_ids_keep_the_checks_own_parameters_not_the_target():
    assert check_id(item("test_v2_model_ready", "token_classification-default")) == "v2_model_ready"
    assert check_id(item("test_outputs_match_reference_model", "fill_mask-logits", proto="v1")) == \
        "outputs_match_reference_model[v1]"
    assert check_id(item("test_entity_schema_for_every_strategy", "token_classification-default",
                         strategy="simple")) == "entity_schema_for_every_strategy[simple]"
    assert check_id(item("test_bad_parameters_are_400_with_error", "task-unknown-default",
                         parameters="stride-not-an-int")) == "bad_parameters_are_400_with_error[stride-not-an-int]"
    assert check_id(item("test_plain", None)) == "plain"


def test_report_groups_checks_by_level():
    def check(id_, level, outcome):
        return {"id": id_, "name": id_, "level": level, "clause": "", "target": "t", "outcome": outcome,
                "reason": "", "exchanges": []}

    checks = [check("w", "workbench", "pass"), check("p1", "protocol", "pass"), check("p2", "protocol", "fail"),
              check("k", "kserve", "skip")]
    levels = counts_by_level(checks)
    assert list(levels) == ["protocol", "kserve", "workbench"]
    assert levels["protocol"] == {"passed": 1, "failed": 1, "known_divergences": 0, "skipped": 0, "total": 2}
    document = {"summary": {"passed": 2, "failed": 1, "known_divergences": 0, "skipped": 1, "total": 4,
                            "duration_s": 1.0}, "levels": levels, "settings": {}, "checks": checks}
    text = render_markdown(document)
    protocol, kserve, workbench = (text.index(f"## Level `{name}`") for name in ("protocol", "kserve", "workbench"))
    assert protocol < text.index("`p2`") < kserve < text.index("`k`") < workbench < text.index("`w`")
    assert "1 passed, 1 failed, 0 known divergences, 0 skipped" in text


# ------------------------------------------------------------------------------------------ the suite, run

def suite(*args: str, cwd: Path = REPO_ROOT, suite_dir: Path = CONFORMANCE_DIR, timeout: float = 300):
    command = [sys.executable, "-m", "pytest", str(suite_dir), "-q", "-p", "no:cacheprovider", *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return done.returncode, (done.stdout + done.stderr).strip()


def test_unreachable_endpoint_stops_the_suite_in_a_line_or_two(tmp_path):
    code, output = suite("--endpoint", "http://localhost:1", "--conformance-report", str(tmp_path / "r.json"))
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert len(output.splitlines()) <= 3, output
    assert "cannot reach http://localhost:1: connection refused" in output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["stopped"].startswith("cannot reach http://localhost:1: connection refused")
    assert report["summary"]["total"] == 0 and "Stopped before any check" in (tmp_path / "r.md").read_text()


@pytest.fixture(scope="module")
def builtin_endpoint(tiny_models):
    from workbench.testsupport.servers import served

    with served(tiny_models("token_classification")) as url:
        yield url


def test_wrong_model_name_stops_the_suite_naming_the_served_model(builtin_endpoint):
    code, output = suite("--endpoint", builtin_endpoint, "--model-name", "bert", "--task", "token_classification")
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert len(output.splitlines()) <= 3, output
    assert f"model 'bert' is not served by {builtin_endpoint}" in output and "it serves 'model'" in output


def test_levels_select_checks_and_the_task_comes_from_metadata(builtin_endpoint, tmp_path):
    """No --task: our server's metadata tells it. --level protocol,workbench: no kserve check runs."""
    run = run_suite(tmp_path / "levels.json", "--endpoint", builtin_endpoint, "--level", "protocol,workbench")
    assert run.returncode == 0, run.describe()
    assert run.report["settings"]["inferred"] == {"task": "token_classification"}
    assert {c["target"] for c in run.report["checks"]} == {"token_classification-default"}
    assert {c["level"] for c in run.report["checks"]} == {"protocol", "workbench"} == set(run.report["levels"])
    assert run.report["levels"]["protocol"]["failed"] == 0 and run.report["levels"]["protocol"]["passed"] >= 20
    ids = [c["id"] for c in run.report["checks"]]
    assert len(ids) == len(set(ids)), "every variant of a check has its own id"
    assert {"entity_schema_for_every_strategy[simple]", "entity_schema_for_every_strategy[none]",
            "bad_parameters_are_400_with_error[unknown-strategy]", "kserve_routes_answer_the_same_entities[v2]",
            "v2_model_ready"} <= set(ids)
    assert "v1_bare_string_instance_is_batch_of_one" not in ids  # kserve level
    markdown = Path(str(tmp_path / "levels.md")).read_text()
    assert "## Level `protocol`" in markdown and "## Level `kserve`" not in markdown


class NoTaskHandler(BaseHTTPRequestHandler):
    """A V2 server that knows model 'm' but says nothing of its task."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        answers = {"/v2/health/live": {"live": True}, "/v2/health/ready": {"ready": True},
                   "/v2/models/m": {"name": "m", "platform": "x", "inputs": [], "outputs": []},
                   "/v2/models/m/ready": {"name": "m", "ready": True}}
        body = json.dumps(answers.get(self.path, {"error": "not found"})).encode()
        self.send_response(200 if self.path in answers else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def no_task_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoTaskHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_unknown_task_stops_only_when_selected_checks_need_it(no_task_endpoint):
    code, output = suite("--endpoint", no_task_endpoint, "--model-name", "m", "--protocol", "v2")
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert len(output.splitlines()) <= 3, output
    assert "the task of model 'm'" in output and "pass --task" in output
    code, output = suite("--endpoint", no_task_endpoint, "--model-name", "m", "--protocol", "v2",
                         "--level", "protocol", "-k", "v2_server_live or v2_model_ready")
    assert code == 0, output
    assert "2 passed" in output


def test_a_check_without_a_level_is_an_error_at_collection(tmp_path):
    copy = tmp_path / "conformance"
    shutil.copytree(CONFORMANCE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "test_zz_new.py").write_text("def test_forgot_the_level(target):\n    pass\n")
    code, output = suite("--collect-only", "--task", "fill_mask", "--mode", "default", cwd=tmp_path, suite_dir=copy)
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert "conformance checks without a level: conformance/test_zz_new.py::test_forgot_the_level" in output


def test_level_option_is_validated_and_selects_at_collection():
    code, output = suite("--collect-only", "--task", "fill_mask", "--mode", "default", "--level", "protocl")
    assert code == pytest.ExitCode.USAGE_ERROR and "unknown level 'protocl'" in output, output
    code, output = suite("--collect-only", "--task", "fill_mask", "--mode", "default", "--level", "kserve")
    assert code == 0, output
    assert "test_v1_bare_string_instance_is_batch_of_one[fill_mask-default]" in output
    assert "test_v1_model_ready" not in output and "test_entity_schema_for_every_strategy" not in output
