"""The divergence matrix is rendered from suite reports, not typed: each verdict comes from the outcomes."""

from __future__ import annotations

from conformance.matrix import SERVERS, cell, render


def check(outcome: str, reason: str = "", check_id: str = "v2_server_live", level: str = "protocol") -> dict:
    return {"id": check_id, "level": level, "clause": "", "outcome": outcome, "reason": reason}


def test_a_single_failing_target_makes_the_cell_a_failure():
    assert cell([check("pass"), check("fail", "answered 500"), check("pass")]).startswith("**fail** (1/3): answered 500")


def test_a_known_divergence_shows_its_reason_without_the_observation():
    reason = "known divergence [kserve] v2-malformed-json: answers 422 -- observed: got 422"
    assert cell([check("known-divergence", reason)]) == "known divergence (1/1): v2-malformed-json: answers 422"


def test_passes_count_and_skips_say_why():
    assert cell([check("pass"), check("skip", "x")]) == "pass (1/2, 1 skipped)"
    assert cell([check("skip", "[setup] protocol v1 not checked")]) == "skip: protocol v1 not checked"
    assert cell([]) == "not checked"


def test_render_has_a_row_per_check_and_a_column_per_server():
    report = {"summary": {"passed": 1, "failed": 1, "known_divergences": 0, "skipped": 0},
              "checks": [check("pass"), check("fail", "boom", check_id="v1_model_ready")]}
    text = render({"workbench": [report]}, SERVERS, "python -m conformance.matrix", "a CPU")
    assert "| `v2_server_live` | pass (1/1) |" in text
    assert "| `v1_model_ready` | **fail** (1/1): boom |" in text
    assert "| workbench | strict |" in text and "kserve-runtime" not in text.split("## Level")[1]


def test_kserve_runtime_grpc_rows_come_from_its_grpc_run_alone():
    from conformance.matrix import GRPC_TASK, grpc_args, offline_args

    runtime = next(s for s in SERVERS if s.name == "kserve-runtime")
    ours = next(s for s in SERVERS if s.name == "workbench")
    assert runtime.grpc_run and not ours.grpc_run  # ours serves gRPC in its offline run
    assert offline_args(runtime)[-2:] == ["-k", "not grpc"] and "-k" not in offline_args(ours)
    args = grpc_args(runtime, "http://127.0.0.1:1", "127.0.0.1:2", 8388608)
    assert args[args.index("--grpc-endpoint") + 1] == "127.0.0.1:2" and args[args.index("--endpoint") + 1]
    assert args[args.index("--task") + 1] == GRPC_TASK and args[-2:] == ["-k", "grpc"]
    assert args[args.index("--profile") + 1] == "kserve" and args[args.index("--grpc-max-message") + 1] == "8388608"
    # the two runs' reports merge into one column: REST rows from the first, gRPC rows from the second
    summary = {"passed": 1, "failed": 1, "known_divergences": 0, "skipped": 0}
    offline = {"summary": summary, "checks": [check("pass")]}
    grpc_run = {"summary": summary, "checks": [check("fail", "ModelInfer answered INTERNAL",
                                                     check_id="grpc_infer_typed_bytes")]}
    text = render({"workbench": [], "kserve-runtime": [offline, grpc_run]}, SERVERS, "python -m conformance.matrix",
                  "a CPU")
    assert "| `grpc_infer_typed_bytes` | not checked | **fail** (1/1): ModelInfer answered INTERNAL |" in text
    assert "| kserve-runtime | kserve |" in text and "| 2 | 2 | 0 | 0 |" in text
