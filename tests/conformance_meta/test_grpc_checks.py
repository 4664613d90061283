"""The OIP gRPC checks (conformance/test_v2_grpc.py): all pass against the built-in server, and each
gRPC mutant (a small proxy in front of it that breaks one rule) makes the checks of that rule fail.

One built-in server (REST + gRPC, receive limit 4 MiB) serves a tiny sequence classifier for the whole
module; the mutants are sync `grpc` servers in this process that forward raw bytes to it.
"""

from __future__ import annotations

from concurrent import futures

import pytest

from tests.conformance_meta.suite_runner import run_suite

grpc = pytest.importorskip("grpc")

from conformance.grpc_client import SERVICE, METHODS, messages  # noqa: E402

LIMIT = 4 * 1024 * 1024
GRPC_CHECKS = "test_v2_grpc"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from workbench.testsupport.servers import free_port, served
    from workbench.testsupport.tiny_models import build_tiny_model

    model_dir = build_tiny_model("sequence_classification", tmp_path_factory.mktemp("grpc-checks"))
    grpc_port = free_port()
    with served(model_dir, "--grpc_port", str(grpc_port), "--grpc_max_receive_message_length", str(LIMIT)) as url:
        yield url, f"127.0.0.1:{grpc_port}"


def _run(tmp_path, url: str, grpc_address: str, name: str, *args: str):
    return run_suite(tmp_path / f"{name}.json", "--endpoint", url, "--grpc-endpoint", grpc_address,
                     "--task", "sequence_classification", "-k", GRPC_CHECKS, *args, timeout=300)


class Mutant:
    """A gRPC proxy to `backend` whose `answer(rpc, response)` / `error(rpc, code, details)` may break rules
    (`answer` edits the response in place, or returns (code, details) to answer that status instead)."""

    def __init__(self, backend: str, answer=None, error=None):
        from workbench.testsupport.servers import free_port

        self.channel = grpc.insecure_channel(backend, options=[("grpc.max_send_message_length", -1),
                                                               ("grpc.max_receive_message_length", -1)])
        self.answer, self.error = answer, error
        handlers = {rpc: grpc.unary_unary_rpc_method_handler(self._forwarder(rpc)) for rpc in METHODS}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  options=[("grpc.max_receive_message_length", LIMIT)])
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        port = free_port()
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def _forwarder(self, rpc: str):
        call = self.channel.unary_unary(f"/{SERVICE}/{rpc}")  # bytes in, bytes out
        response_type = getattr(messages(), METHODS[rpc][1])

        def forward(request: bytes, context):
            try:
                answer = call(request, timeout=30)
            except grpc.RpcError as exc:
                code, details = exc.code(), exc.details()
                if self.error is not None:
                    code, details = self.error(rpc, code, details)
                context.abort(code, details)
            if self.answer is None:
                return answer
            response = response_type.FromString(answer)
            status = self.answer(rpc, response)
            if status is not None:
                context.abort(*status)
            return response.SerializeToString()

        return forward

    def close(self):
        self.server.stop(None)
        self.channel.close()


def test_grpc_checks_pass_against_builtin(server, tmp_path):
    url, address = server
    run = _run(tmp_path, url, address, "builtin")
    assert run.report["summary"]["failed"] == 0, run.describe()
    passed = run.ids_with("pass")
    assert {"grpc_infer_raw_in_raw_out", "grpc_infer_echoes_id[raw]", "grpc_answers_equal_rest[typed]",
            "grpc_over_size_limit_resource_exhausted", "grpc_unknown_model_infer_not_found"} <= passed, sorted(passed)
    assert run.returncode == 0, run.describe()


def _wrong_shape_no_id(rpc, response):
    if rpc == "ModelInfer":
        response.id = ""
        response.outputs[0].shape.append(2)  # twice the elements the data holds


def _raw_dropped(rpc, response):
    if rpc == "ModelInfer":
        del response.raw_output_contents[:]  # a raw request answered with no data at all


def _internal_for_text_infer(rpc, response):
    if rpc == "ModelInfer":  # KServe 0.21's answer to every text ModelInfer, word for word
        return grpc.StatusCode.INTERNAL, "Internal server error"
    return None


def _empty_metadata(rpc, response):
    if rpc == "ModelMetadata":
        del response.inputs[:]
        del response.outputs[:]


def _internal_for_bad_input(rpc, code, details):
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return grpc.StatusCode.INTERNAL, f"Exception calling application: {details}"
    return code, details


INFER_CHECKS = {"grpc_infer_typed_bytes", "grpc_infer_outputs_well_formed[typed]",
                "grpc_infer_outputs_well_formed[raw]", "grpc_infer_raw_input_accepted", "grpc_infer_raw_in_raw_out",
                "grpc_infer_echoes_id[typed]", "grpc_infer_echoes_id[raw]", "grpc_answers_equal_rest[typed]",
                "grpc_answers_equal_rest[raw]"}
BAD_INPUT_CHECKS = {"grpc_wrong_datatype_invalid_argument", "grpc_shape_data_mismatch_invalid_argument[typed]",
                    "grpc_shape_data_mismatch_invalid_argument[raw]"}


@pytest.mark.parametrize("name, mutation, killed", [
    ("wrong-shape-no-id", {"answer": _wrong_shape_no_id},
     {"grpc_infer_outputs_well_formed[typed]", "grpc_infer_outputs_well_formed[raw]", "grpc_infer_echoes_id[typed]",
      "grpc_infer_echoes_id[raw]", "grpc_answers_equal_rest[typed]", "grpc_answers_equal_rest[raw]"}),
    ("raw-dropped", {"answer": _raw_dropped},
     {"grpc_infer_raw_in_raw_out", "grpc_infer_outputs_well_formed[raw]", "grpc_answers_equal_rest[raw]"}),
    ("internal-for-bad-input", {"error": _internal_for_bad_input},
     BAD_INPUT_CHECKS | {"grpc_contents_and_raw_invalid_argument"}),
    # KServe's gRPC divergences (conformance.profiles, grpc-*) on our server: under strict they are failures
    ("internal-for-text-infer", {"answer": _internal_for_text_infer}, INFER_CHECKS),
    ("empty-metadata", {"answer": _empty_metadata}, {"grpc_model_metadata"}),
])
def test_grpc_mutant_is_caught(server, tmp_path, name, mutation, killed):
    url, address = server
    mutant = Mutant(address, **mutation)
    try:
        run = _run(tmp_path, url, mutant.address, name)
    finally:
        mutant.close()
    failed = run.ids_with("fail")
    assert failed == killed, f"{name}: failed {sorted(failed)}, expected {sorted(killed)}\n{run.describe()}"
    assert run.returncode != 0


def test_unreachable_grpc_endpoint_stops_the_suite_in_a_line(server, tmp_path):
    import subprocess
    import sys

    from tests.conformance_meta.suite_runner import CONFORMANCE_DIR, REPO_ROOT
    from workbench.testsupport.servers import free_port

    url, _ = server
    address = f"127.0.0.1:{free_port()}"
    done = subprocess.run([sys.executable, "-m", "pytest", str(CONFORMANCE_DIR), "-q", "-p", "no:cacheprovider",
                           "--endpoint", url, "--grpc-endpoint", address, "--task", "sequence_classification"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert len(output.splitlines()) <= 3, output
    assert f"cannot reach gRPC endpoint {address} (--grpc-endpoint): connection refused (UNAVAILABLE)" in output


def test_a_kserve_like_internal_with_other_details_still_fails_under_the_kserve_profile(server, tmp_path):
    """The kserve profile excuses KServe's INTERNAL "Internal server error" only: INTERNAL with another
    message (here for a bad input) is still a failure under --profile kserve."""
    url, address = server
    mutant = Mutant(address, error=_internal_for_bad_input)
    try:
        run = _run(tmp_path, url, mutant.address, "internal-for-bad-input-kserve", "--profile", "kserve")
    finally:
        mutant.close()
    assert run.ids_with("fail") == BAD_INPUT_CHECKS | {"grpc_contents_and_raw_invalid_argument"}, run.describe()
    assert run.ids_with("known-divergence") == set(), run.describe()


# What KServe 0.21's huggingfaceserver answers over gRPC (measured; opt-in, it takes a minute), by the
# divergence key of conformance.profiles that names it: every ModelInfer of text is INTERNAL (its
# get_predict_input hands the tokenizer a numpy array of `bytes`), and so are a wrong datatype (the
# tokenizer refuses ints) and a shape/data mismatch (a numpy reshape error); its metadata has no tensors.
KSERVE_RUNTIME_GRPC_DIVERGENT = {
    "grpc-infer-text": INFER_CHECKS,
    "grpc-wrong-datatype": {"grpc_wrong_datatype_invalid_argument"},
    "grpc-shape-data-mismatch": {"grpc_shape_data_mismatch_invalid_argument[typed]",
                                 "grpc_shape_data_mismatch_invalid_argument[raw]"},
    "grpc-model-metadata-tensors": {"grpc_model_metadata"},
}
KSERVE_RUNTIME_GRPC_FAILURES = set().union(*KSERVE_RUNTIME_GRPC_DIVERGENT.values())


def test_grpc_checks_against_kserve_runtime(tmp_path):
    """WORKBENCH_KSERVE_GRPC=1: KServe's real runtime fails exactly the checks above under --profile strict,
    and under --profile kserve they are its known divergences and nothing fails (its receive limit is 8 MiB)."""
    import os

    from workbench.testsupport.kserve_runtime import GRPC_MAX_MESSAGE, missing_reason, served_runtime_with_grpc
    from workbench.testsupport.tiny_models import build_tiny_model

    if os.environ.get("WORKBENCH_KSERVE_GRPC") != "1":
        pytest.skip("opt-in (a minute): WORKBENCH_KSERVE_GRPC=1")
    if missing_reason() is not None:
        pytest.skip(missing_reason())
    model_dir = build_tiny_model("sequence_classification", tmp_path / "model")
    runs = {}
    with served_runtime_with_grpc(model_dir) as (url, address):
        for profile in ("strict", "kserve"):
            runs[profile] = _run(tmp_path, url, address, f"kserve-grpc-{profile}", "--profile", profile,
                                 "--grpc-max-message", str(GRPC_MAX_MESSAGE))
    assert runs["strict"].ids_with("fail") == KSERVE_RUNTIME_GRPC_FAILURES, runs["strict"].describe()
    assert runs["kserve"].ids_with("fail") == set(), runs["kserve"].describe()
    assert runs["kserve"].ids_with("known-divergence") == KSERVE_RUNTIME_GRPC_FAILURES, runs["kserve"].describe()
    assert runs["kserve"].ids_with("pass") == runs["strict"].ids_with("pass"), runs["kserve"].describe()
