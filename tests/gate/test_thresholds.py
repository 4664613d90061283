"""Pure units: the config file's parsing and validation, and `decide`."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.gate.thresholds import (
    NOT_MEASURED,
    ConfigError,
    GateConfig,
    load_config,
    parse_config,
    decide,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def training(overall: float, **per_entity: float) -> dict:
    return {"best": {"overall_f1": overall,
                     "per_entity": {k: {"precision": v, "recall": v, "f1": v, "number": 10} for k, v in per_entity.items()}}}


def conformance_run(mode: str = "default", failed: tuple[str, ...] = (), known: int = 0) -> dict:
    return {"mode": mode, "protocol": "both", "error": None, "wall_s": 1.0, "report": "r.json",
            "summary": {"passed": 40, "failed": len(failed), "known_divergences": known, "skipped": 2, "total": 42},
            "failed": [{"id": f, "target": "", "reason": "boom"} for f in failed], "known_divergences": []}


def bench_report(rps: float = 10.0, p99: float = 100.0, errors: int = 0) -> dict:
    level = {"concurrency": 1, "requests": 10, "requests_per_s": rps, "error_count": errors,
             "latency_ms": {"p50": p99 / 2, "p99": p99}}
    return {"levels": [level, dict(level, concurrency=4, requests_per_s=rps * 1.5)]}


# ------------------------------------------------------------------------------------------ parsing

def test_repo_gate_yaml_is_valid_and_the_packaged_default_is_the_same():
    root = load_config(REPO_ROOT / "gate.yaml")
    packaged = load_config(REPO_ROOT / "workbench" / "gate" / "default.yaml")
    assert root.f1 == packaged.f1 and root.conformance == packaged.conformance
    assert root.bench == packaged.bench and root.train == packaged.train
    assert root.f1.overall is not None and root.conformance.enabled and "default" in root.conformance.modes


def test_empty_config_gives_defaults():
    config = parse_config({})
    assert config.f1.overall is None and config.conformance.modes == ("default",) and not config.bench.enabled


def test_toml_config(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text('[f1]\noverall = 0.5\n[f1.per_entity]\nPER = 0.9\n[conformance]\nmodes = ["default", "logits"]\n')
    config = load_config(path)
    assert config.f1.overall == 0.5 and config.f1.per_entity == {"PER": 0.9}
    assert config.conformance.modes == ("default", "logits")


@pytest.mark.parametrize("data, key", [
    ({"f1": {"overal": 0.5}}, "f1.overal"),
    ({"f1": {"overall": 1.5}}, "f1.overall"),
    ({"f1": {"overall": "high"}}, "f1.overall"),
    ({"f1": {"per_entity": {"PER": -0.1}}}, "f1.per_entity.PER"),
    ({"conformance": {"modes": ["default", "probs"]}}, "conformance.modes"),
    ({"conformance": {"protocol": "v3"}}, "conformance.protocol"),
    ({"conformance": {"max_failed": -1}}, "conformance.max_failed"),
    ({"conformance": {"enabled": "yes"}}, "conformance.enabled"),
    ({"bench": {"concurrency": [0]}}, "bench.concurrency"),
    ({"bench": {"requests": 0}}, "bench.requests"),
    ({"bench": {"min_requests_per_s": "fast"}}, "bench.min_requests_per_s"),
    ({"train": {"epochs": 3}}, "train.epochs"),
    ({"train": {"output_dir": "x"}}, "train.output_dir"),
    ({"thresholds": {}}, "top level.thresholds"),
])
def test_bad_config_names_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(data)


def test_bad_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("f1: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    bad = tmp_path / "bad.yaml"
    bad.write_text("f1:\n  overall: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: f1\.overall"):
        load_config(bad)


# ------------------------------------------------------------------------------------------ decide

CONFIG = parse_config({
    "f1": {"overall": 0.8, "per_entity": {"PER": 0.9, "LOC": 0.5}},
    "conformance": {"modes": ["default", "probabilities"]},
    "bench": {"enabled": True, "min_requests_per_s": 5, "max_p99_latency_ms": 500},
})


def good_results() -> dict:
    return {"training": training(0.85, PER=0.95, LOC=0.6),
            "conformance": [conformance_run("default"), conformance_run("probabilities")],
            "bench": bench_report()}


def test_everything_above_the_floors_passes():
    decision = decide(good_results(), CONFIG)
    assert decision.passed, decision.reasons
    assert decision.reasons == [] and all(c.outcome == "pass" for c in decision.checks)


def test_low_f1_fails_with_the_number_and_the_floor():
    results = dict(good_results(), training=training(0.7, PER=0.95, LOC=0.4))
    decision = decide(results, CONFIG)
    assert not decision.passed
    assert any("F1 overall: 0.700" in r and ">= 0.800" in r for r in decision.reasons), decision.reasons
    assert any("F1 LOC: 0.400" in r for r in decision.reasons)
    assert not any("PER" in r for r in decision.reasons)


def test_entity_missing_from_the_results_fails():
    results = dict(good_results(), training=training(0.9, PER=0.95))
    decision = decide(results, CONFIG)
    assert [r for r in decision.reasons if "LOC" in r] == ["F1 LOC: absent from the validation data (required >= 0.500)"]


def test_without_training_f1_is_not_measured_and_does_not_pass_or_fail():
    results = dict(good_results(), training=None)
    decision = decide(results, CONFIG)
    assert decision.passed
    f1_rows = [c for c in decision.checks if c.group == "F1"]
    assert len(f1_rows) == 3 and {c.outcome for c in f1_rows} == {NOT_MEASURED}


def test_failed_conformance_checks_are_named():
    results = dict(good_results(), conformance=[conformance_run("default", failed=("v2_infer_echoes_request_id",)),
                                                conformance_run("probabilities")])
    decision = decide(results, CONFIG)
    assert not decision.passed
    assert any("mode default" in r and "v2_infer_echoes_request_id" in r for r in decision.reasons)


def test_a_mode_not_run_or_not_completed_fails():
    results = dict(good_results(), conformance=[conformance_run("default")])
    assert any("mode probabilities: not run" in r for r in decide(results, CONFIG).reasons)
    broken = dict(conformance_run("probabilities"), error="the suite wrote no report", summary=None)
    results = dict(good_results(), conformance=[conformance_run("default"), broken])
    assert any("did not complete: the suite wrote no report" in r for r in decide(results, CONFIG).reasons)


def test_known_divergences_limit_is_optional():
    runs = [conformance_run("default", known=2), conformance_run("probabilities")]
    assert decide(dict(good_results(), conformance=runs), CONFIG).passed
    strict = parse_config({"conformance": {"max_known_divergences": 0}})
    decision = decide({"conformance": [conformance_run("default", known=2)]}, strict)
    assert not decision.passed and "known divergences" in decision.reasons[0]


def test_bench_floors():
    slow = dict(good_results(), bench=bench_report(rps=2.0, p99=900.0, errors=3))
    reasons = decide(slow, CONFIG).reasons
    assert any("failed requests: 6" in r for r in reasons)  # 3 per level, 2 levels
    assert any("throughput" in r and "3.0 req/s" in r for r in reasons)  # best level: 2.0 * 1.5
    assert any("p99 latency (concurrency 1): 900.0 ms" in r for r in reasons)
    missing = dict(good_results(), bench={"error": "workbench bench wrote no report"})
    assert any("did not complete" in r for r in decide(missing, CONFIG).reasons)


def test_disabled_sections_add_no_rows():
    decision = decide({}, GateConfig())  # conformance on by default: a run that did none fails
    assert not decision.passed and [c.name for c in decision.checks] == ["mode default"]
    quiet = parse_config({"conformance": {"enabled": False}})
    assert decide({}, quiet).passed and decide({}, quiet).checks == []


def test_step_errors_fail_the_gate():
    decision = decide({"errors": {"training": "training failed (exit code 2)"}}, parse_config({"conformance": {"enabled": False}}))
    assert not decision.passed and decision.reasons == ["training: training failed (exit code 2)"]


def test_a_new_gate_run_removes_an_earlier_runs_reports(tmp_path):
    from workbench.gate.cli import remove_earlier_outputs

    for name in ("conformance-probabilities.json", "conformance-default.log", "bench.json", "gate-summary.md"):
        (tmp_path / name).write_text("old")
    (tmp_path / "model").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    removed = remove_earlier_outputs(tmp_path)
    assert sorted(p.name for p in removed) == ["bench.json", "conformance-default.log",
                                               "conformance-probabilities.json", "gate-summary.md"]
    assert (tmp_path / "model").is_dir() and (tmp_path / "notes.txt").exists()


# ------------------------------------------------------------------------------------------ too few checks ran

def skipping_run(passed: int, skipped: int, reasons: dict[str, int], by_protocol: int = 0) -> dict:
    run = conformance_run("default")
    run["summary"] = {"passed": passed, "failed": 0, "known_divergences": 0, "skipped": skipped,
                      "total": passed + skipped}
    return dict(run, skip_reasons=reasons, skipped_by_protocol=by_protocol)


def test_one_pass_and_500_skips_fails_naming_why_they_skipped():
    run = skipping_run(1, 500, {"needs --task to know what the outputs mean": 480, "no --reference-model": 20})
    decision = decide({"conformance": [run]}, parse_config({}))
    assert not decision.passed
    passed_reason, skipped_reason = decision.reasons
    assert passed_reason.startswith("conformance mode default checks passed: 1 passed of 501: too few checks ran, "
                                    "500 skipped; most for 'needs --task to know what the outputs mean' (480)")
    assert passed_reason.endswith("(required >= 20 passed)")
    assert skipped_reason.startswith("conformance mode default checks skipped: 500 of 501 skipped (100%)")
    assert skipped_reason.endswith("(required <= 50% skipped)")


def test_skips_of_a_protocol_not_asked_for_do_not_count():
    """conformance.protocol v1: the V2 checks skip by request; 3 other skips of 33 are fine."""
    run = skipping_run(30, 31, {"protocol v2 not checked (--protocol)": 28, "no --reference-model": 3}, by_protocol=28)
    decision = decide({"conformance": [run]}, parse_config({}))
    assert decision.passed, decision.reasons
    row = next(c for c in decision.checks if c.name == "mode default checks skipped")
    assert row.measured == "3 of 33 skipped (9%)" and row.outcome == "pass"


def test_floor_and_cap_are_configurable_and_can_be_switched_off():
    run = skipping_run(12, 20, {"no --reference-model": 20})
    assert not decide({"conformance": [run]}, parse_config({})).passed  # 12 < 20 passed, 62% skipped
    lenient = parse_config({"conformance": {"min_passed": 10, "max_skipped_fraction": 0.7}})
    assert decide({"conformance": [run]}, lenient).passed
    off = parse_config({"conformance": {"min_passed": None, "max_skipped_fraction": None}})
    decision = decide({"conformance": [run]}, off)
    assert decision.passed and [c.name for c in decision.checks] == ["mode default"]
    for key, value in (("min_passed", -1), ("min_passed", 2.5), ("max_skipped_fraction", 1.5)):
        with pytest.raises(ConfigError, match=f"conformance\\.{key}"):
            parse_config({"conformance": {key: value}})


def test_shipped_config_has_the_floor_and_the_cap():
    packaged = load_config(REPO_ROOT / "workbench" / "gate" / "default.yaml").conformance
    assert packaged.min_passed == 20 and packaged.max_skipped_fraction == 0.5


def test_skip_reasons_from_a_report():
    from workbench.gate.steps import skip_reasons

    document = {"checks": [{"outcome": "skip", "reason": "protocol v2 not checked (--protocol)"},
                           {"outcome": "skip", "reason": "protocol v2 not checked (--protocol)"},
                           {"outcome": "skip", "reason": "no --expect file\nmore"},
                           {"outcome": "pass", "reason": ""}]}
    assert skip_reasons(document) == {"protocol v2 not checked (--protocol)": 2, "no --expect file": 1}
