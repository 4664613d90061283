"""The gate's one Markdown summary: verdict and reasons, F1 vs floors, conformance, bench, timings.

`render_summary(results, config, decision)` is pure; the same text is printed, written to --summary
and appended to $GITHUB_STEP_SUMMARY so a CI system can post it.
"""

from __future__ import annotations

from workbench.gate.thresholds import NOT_MEASURED, Decision, GateConfig

MARK = {"pass": "✅ pass", "fail": "❌ fail", NOT_MEASURED: "➖ not measured"}


def _cell(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "…"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def verdict_lines(decision: Decision) -> list[str]:
    if decision.passed:
        return ["# Workbench gate: ✅ PASSED", ""]
    lines = ["# Workbench gate: ❌ FAILED", "", "Reasons:", ""]
    lines += [f"- {_cell(reason, 400)}" for reason in decision.reasons]
    return lines + [""]


def target_lines(results: dict, config: GateConfig) -> list[str]:
    target = results.get("target") or {}
    lines = []
    if target.get("kind") == "trained":
        options = f", options `{target['options'].strip()}`" if (target.get("options") or "").strip() else ""
        lines.append(f"Trained and served locally: base model {target.get('base_model')}, "
                     f"data {target.get('data')}{options}.")
    elif target.get("kind") == "model_dir":
        lines.append(f"Served locally: the model in `{target.get('model_dir')}`.")
    else:
        where = target.get("endpoint")
        extra = f" (InferenceService {target['isvc']})" if target.get("isvc") else ""
        host = f", Host `{target['host_header']}`" if target.get("host_header") else ""
        lines.append(f"Deployed endpoint `{where}`{extra}, model `{target.get('model_name')}`{host}.")
    lines.append(f"Thresholds: `{config.source}`.")
    return lines + [""]


def threshold_lines(decision: Decision) -> list[str]:
    if not decision.checks:
        return []
    rows = [[c.group, c.name, c.measured, c.limit, MARK.get(c.outcome, c.outcome)] for c in decision.checks]
    return ["## Thresholds", ""] + _table(["group", "threshold", "measured", "required", "result"], rows) + [""]


def training_lines(results: dict, config: GateConfig) -> list[str]:
    training = results.get("training")
    if not training:
        note = ("F1 thresholds: not measured (no training run; pass `--results results.json` from the "
                "training run to check them)." if (config.f1.overall is not None or config.f1.per_entity) else "")
        return ["## Validation scores", "", note, ""] if note else []
    best = training["best"]
    lines = ["## Validation scores", "",
             f"Best epoch {best.get('epoch')} of {len(training.get('epochs', []))}: F1 **{best['overall_f1']:.3f}** "
             f"(precision {best.get('overall_precision', 0):.3f}, recall {best.get('overall_recall', 0):.3f}, "
             f"accuracy {best.get('overall_accuracy', 0):.3f}).", ""]
    rows = []
    for name, scores in sorted((best.get("per_entity") or {}).items()):
        floor = config.f1.per_entity.get(name)
        verdict = "" if floor is None else ("✅" if scores["f1"] >= floor else "❌")
        rows.append([name, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}", f"{scores['f1']:.3f}",
                     scores.get("number", ""), "—" if floor is None else f"{floor:.2f} {verdict}"])
    if rows:
        lines += _table(["entity", "precision", "recall", "F1", "support", "floor"], rows) + [""]
    return lines


def conformance_lines(results: dict) -> list[str]:
    runs = results.get("conformance") or []
    if not runs:
        return []
    rows, failures = [], []
    for run in runs:
        s = run.get("summary") or {}
        rows.append([run["mode"], run["protocol"], s.get("passed", "—"), s.get("failed", "—"),
                     s.get("known_divergences", "—"), s.get("skipped", "—"), f"{run['wall_s']:.0f} s",
                     run.get("error") or f"`{run['report']}`"])
        failures += [(run["mode"], check) for check in run.get("failed", [])]
    lines = ["## Conformance", ""]
    lines += _table(["mode", "protocols", "passed", "failed", "known divergences", "skipped", "time", "report"], rows)
    if failures:
        lines += ["", "Failed checks:", ""]
        for mode, check in failures:
            first = (check.get("reason") or "").strip().splitlines()[:1]
            lines.append(f"- `{check['id']}` ({mode}{', ' + check['target'] if check.get('target') else ''})"
                         + (f": {_cell(first[0], 300)}" if first else ""))
    known = [(run["mode"], check) for run in runs for check in run.get("known_divergences", [])]
    if known:
        lines += ["", "Known divergences (reported, not failed): "
                  + ", ".join(f"`{check['id']}` ({mode})" for mode, check in known)]
    return lines + [""]


def bench_lines(results: dict) -> list[str]:
    bench = results.get("bench")
    if not bench:
        return []
    if bench.get("error"):
        return ["## Latency and throughput", "", f"Not measured: {bench['error']}", ""]
    rows = [[level["concurrency"], level["requests"], f"{level['requests_per_s']:.1f}",
             _ms(level["latency_ms"]["p50"]), _ms(level["latency_ms"]["p99"]), level["error_count"]]
            for level in bench["levels"]]
    lines = ["## Latency and throughput", "",
             f"`workbench bench`, protocol {bench.get('protocol')}, {bench.get('requests')} requests per level "
             f"(batch {bench.get('batch', 1)}):", ""]
    return lines + _table(["concurrency", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows) + [""]


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def timing_lines(results: dict) -> list[str]:
    timings = results.get("timings") or {}
    if not timings:
        return []
    rows = [[step, f"{seconds:.1f}"] for step, seconds in timings.items()]
    return ["## Timings", ""] + _table(["step", "seconds"], rows) + [""]


def render_summary(results: dict, config: GateConfig, decision: Decision) -> str:
    lines = (verdict_lines(decision) + target_lines(results, config) + threshold_lines(decision)
             + training_lines(results, config) + conformance_lines(results) + bench_lines(results)
             + timing_lines(results))
    return "\n".join(lines).rstrip() + "\n"
