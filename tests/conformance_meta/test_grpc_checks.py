"""The OIP gRPC checks (conformance/test_v2_grpc.py): all pass against the built-in server, and each
gRPC mutant of the catalogue (tests/conformance_meta/mutants.py, GRPC_MUTANTS) makes exactly the checks of the
rule it breaks fail.

One built-in server (REST + gRPC, receive limit 4 MiB) serves a tiny sequence classifier for the whole
module; each mutant is a sync `grpc` proxy in this process (tests/conformance_meta/grpc_mutant_proxy.py).
"""

from __future__ import annotations

import pytest

from tests.conformance_meta.suite_runner import run_suite

grpc = pytest.importorskip("grpc")

from tests.conformance_meta.grpc_mutant_proxy import GrpcMutantProxy  # noqa: E402
from tests.conformance_meta.mutants import GRPC_BY_NAME, GRPC_RECEIVE_LIMIT as LIMIT  # noqa: E402

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


def test_grpc_checks_pass_against_builtin(server, tmp_path):
    url, address = server
    run = _run(tmp_path, url, address, "builtin")
    assert run.report["summary"]["failed"] == 0, run.describe()
    passed = run.ids_with("pass")
    assert {"grpc_infer_raw_in_raw_out", "grpc_infer_echoes_id[raw]", "grpc_answers_equal_rest[typed]",
            "grpc_over_size_limit_resource_exhausted", "grpc_unknown_model_infer_not_found"} <= passed, sorted(passed)
    assert run.returncode == 0, run.describe()


INFER_CHECKS = {"grpc_infer_typed_bytes", "grpc_infer_outputs_well_formed[typed]",
                "grpc_infer_outputs_well_formed[raw]", "grpc_infer_raw_input_accepted", "grpc_infer_raw_in_raw_out",
                "grpc_infer_echoes_id[typed]", "grpc_infer_echoes_id[raw]", "grpc_answers_equal_rest[typed]",
                "grpc_answers_equal_rest[raw]"}
BAD_INPUT_CHECKS = {"grpc_wrong_datatype_invalid_argument", "grpc_shape_data_mismatch_invalid_argument[typed]",
                    "grpc_shape_data_mismatch_invalid_argument[raw]"}
# the checks that send a bad request and then ask whether the endpoint still serves (ServerReady, ModelReady)
STILL_SERVING_CHECKS = BAD_INPUT_CHECKS | {"grpc_contents_and_raw_invalid_argument", "grpc_unknown_model_infer_not_found",
                                           "grpc_unknown_model_metadata_not_found",
                                           "grpc_over_size_limit_resource_exhausted"}


# gRPC mutant (tests/conformance_meta/mutants.py, GRPC_MUTANTS) -> exactly the checks that must fail on it
MUST_FAIL = {
    "grpc-wrong-shape-no-id": {"grpc_infer_outputs_well_formed[typed]", "grpc_infer_outputs_well_formed[raw]",
                               "grpc_infer_echoes_id[typed]", "grpc_infer_echoes_id[raw]",
                               "grpc_answers_equal_rest[typed]", "grpc_answers_equal_rest[raw]"},
    "grpc-raw-dropped": {"grpc_infer_raw_in_raw_out", "grpc_infer_outputs_well_formed[raw]",
                         "grpc_answers_equal_rest[raw]"},
    "grpc-internal-for-bad-input": BAD_INPUT_CHECKS | {"grpc_contents_and_raw_invalid_argument"},
    # KServe's gRPC divergences (conformance.profiles, grpc-*) on our server: under strict they are failures
    "grpc-internal-for-text-infer": INFER_CHECKS,
    "grpc-empty-metadata": {"grpc_model_metadata"},
    "grpc-not-live": {"grpc_server_live"},
    "grpc-server-metadata-unnamed": {"grpc_server_metadata"},
    # a server that says it is not ready fails its health checks and every "still serving after" check
    "grpc-not-ready": {"grpc_server_ready", "grpc_model_ready", *STILL_SERVING_CHECKS},
    "grpc-unknown-model-invalid-argument": {"grpc_unknown_model_infer_not_found",
                                            "grpc_unknown_model_metadata_not_found"},
    "grpc-size-limit-unknown": {"grpc_over_size_limit_resource_exhausted"},
}


def test_every_grpc_mutant_has_its_expected_kills():
    assert set(MUST_FAIL) == set(GRPC_BY_NAME)


@pytest.mark.parametrize("name", sorted(MUST_FAIL))
def test_grpc_mutant_is_caught(server, tmp_path, name):
    url, address = server
    proxy = GrpcMutantProxy(address, GRPC_BY_NAME[name])
    try:
        run = _run(tmp_path, url, proxy.address, name)
    finally:
        proxy.close()
    failed = run.ids_with("fail")
    assert failed == MUST_FAIL[name], f"{name}: failed {sorted(failed)}, expected {sorted(MUST_FAIL[name])}\n{run.describe()}"
    assert run.returncode != 0


def test_transparent_grpc_proxy_passes(server, tmp_path):
    """The proxy itself breaks nothing: with no mutation every gRPC check passes through it."""
    url, address = server
    proxy = GrpcMutantProxy(address, None)
    try:
        run = _run(tmp_path, url, proxy.address, "transparent")
    finally:
        proxy.close()
    assert run.ids_with("fail") == set(), run.describe()


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
    proxy = GrpcMutantProxy(address, GRPC_BY_NAME["grpc-internal-for-bad-input"])
    try:
        run = _run(tmp_path, url, proxy.address, "internal-for-bad-input-kserve", "--profile", "kserve")
    finally:
        proxy.close()
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
