"""`--conformance-report PATH`: a JSON and a Markdown report of every check.

Files: when PATH ends in `.json`, the JSON goes to PATH and the Markdown next to it with `.md`
(`out.json` -> `out.json` + `out.md`); otherwise to `PATH.json` and `PATH.md`.

JSON: {"summary": {"passed", "failed", "known_divergences", "skipped", "total", "duration_s"},
       "stopped": "why preflight stopped the run (only when it did)",
       "levels": {"protocol": {"passed", "failed", "known_divergences", "skipped", "total"}, ...},
       "settings": {...}, "checks": [{"id", "name", "level", "clause", "target", "nodeid", "outcome", "reason",
       "duration_s", "exchanges": [...]}]}
outcome is pass | fail | known-divergence | skip; level is protocol | kserve | workbench
(conformance.checks.LEVELS); `exchanges` (request sent, response received: status, a subset of
headers, body truncated) are kept for failures and known divergences. The Markdown groups the
checks by level.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.levels import LEVELS

OUTCOME_KEYS = {"pass": "passed", "fail": "failed", "known-divergence": "known_divergences", "skip": "skipped"}


def report_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        return path, path.with_suffix(".md")
    return Path(f"{path}.json"), Path(f"{path}.md")


def check_id(item: pytest.Item) -> str:
    """The test name without `test_`, with the check's own parameters (not the target's):
    `outputs_match_reference_model[v1]`, `entity_schema_for_every_strategy[simple]`."""
    name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    name = name[len("test_"):] if name.startswith("test_") else name
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return name
    own = _own_param_id(callspec)
    return f"{name}[{own}]" if own else name


def _own_param_id(callspec) -> str:
    """The part of the callspec id that is not the target's id (the target is parametrized first)."""
    spec = callspec.params.get("target")
    target = getattr(spec, "id", None)
    full = callspec.id
    if not target:
        return full
    if full == target:
        return ""
    if full.startswith(target + "-"):
        return full[len(target) + 1:]
    if full.endswith("-" + target):
        return full[:-len(target) - 1]
    return "-".join(str(v) for k, v in callspec.params.items() if k != "target")


def target_id(item: pytest.Item) -> str:
    spec = getattr(getattr(item, "callspec", None), "params", {}).get("target")
    if spec is None:  # a check not parametrized by target (the gRPC checks): it checks the first target's model
        specs = getattr(item.config, "_conformance_specs", None) or []
        spec = specs[0] if specs else None
    return getattr(spec, "id", "")


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail).removeprefix("reason: ")
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        text = getattr(report, "longreprtext", "") or str(report.longrepr)
        lines = [line for line in text.strip().splitlines() if line.strip()]
        errors = [line[2:].strip() for line in lines if line.startswith("E ")]
        return "\n".join(errors[:8]) if errors else "\n".join(lines[-8:])
    return ""


class ConformanceReport:
    def __init__(self, path: str | Path, config: pytest.Config):
        self.json_path, self.md_path = report_paths(path)
        self.config = config
        self.checks: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.stopped: str | None = None  # why preflight stopped the run before any check (conformance.preflight)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self.checks.get(item.nodeid)
        if entry is None:
            doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines() if hasattr(item, "function") else []
            marker = item.get_closest_marker("clause")
            level = item.get_closest_marker("level")
            entry = {"id": check_id(item), "name": doc[0] if doc else item.name,
                     "level": level.args[0] if level is not None and level.args else "",
                     "clause": marker.args[0] if marker else "",
                     "target": target_id(item), "nodeid": item.nodeid, "outcome": "pass", "reason": "",
                     "duration_s": 0.0, "exchanges": []}
            self.checks[item.nodeid] = entry
        entry["duration_s"] = round(entry["duration_s"] + report.duration, 4)
        new = None
        if hasattr(report, "wasxfail"):
            new = "known-divergence"
        elif report.failed:
            new = "fail"
        elif report.skipped:
            new = "skip"
        if new is not None and entry["outcome"] in ("pass", "skip"):
            entry["outcome"] = new
            entry["reason"] = _reason(report)
            if report.when != "call":
                entry["reason"] = f"[{report.when}] " + entry["reason"]
        if report.when == "teardown" and entry["outcome"] in ("fail", "known-divergence"):
            entry["exchanges"] = [e.to_dict() for e in getattr(item, "conformance_exchanges", [])][-10:]

    def summary(self) -> dict[str, Any]:
        counts = count_outcomes(self.checks.values())
        counts["duration_s"] = round(time.monotonic() - self.started, 2)
        return counts

    def settings(self) -> dict[str, Any]:
        names = ("endpoint", "model_name", "task", "protocol", "mode", "profile", "level", "expect", "reference_model",
                 "host_header", "serve_with", "isvc", "namespace")
        settings = {name: self.config.getoption(name, default=None) for name in names}
        inferred = getattr(self.config, "_conformance_inferred", None)  # what preflight read from the server
        if inferred:
            settings["inferred"] = inferred
        return settings

    def document(self) -> dict[str, Any]:
        checks = list(self.checks.values())
        document = {"summary": self.summary(), "levels": counts_by_level(checks), "settings": self.settings(),
                    "checks": checks}
        if self.stopped:
            document["stopped"] = self.stopped
        return document

    def stop(self, reason: str) -> None:
        """Preflight stopped the run: write the report now (pytest may not reach sessionfinish), saying why."""
        self.stopped = reason
        self.write()

    def pytest_sessionfinish(self, session):
        self.write()

    def write(self) -> None:
        document = self.document()
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
        self.md_path.write_text(render_markdown(document), encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter):
        s = self.summary()
        terminalreporter.write_line(
            f"conformance: {s['passed']} passed, {s['failed']} failed, {s['known_divergences']} known divergences, "
            f"{s['skipped']} skipped -> {self.json_path} / {self.md_path}")
        for name, counts in counts_by_level(list(self.checks.values())).items():
            terminalreporter.write_line(f"  level {name or '(none)'}: {_counts_text(counts)}")


def count_outcomes(checks) -> dict[str, int]:
    counts = {key: 0 for key in OUTCOME_KEYS.values()}
    total = 0
    for entry in checks:
        counts[OUTCOME_KEYS[entry["outcome"]]] += 1
        total += 1
    counts["total"] = total
    return counts


def level_order(checks) -> list[str]:
    """The levels present: protocol, kserve, workbench first, then any other (e.g. "" for an old report)."""
    present = list(dict.fromkeys(entry.get("level", "") for entry in checks))
    return [name for name in LEVELS if name in present] + [name for name in present if name not in LEVELS]


def counts_by_level(checks: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {name: count_outcomes(e for e in checks if e.get("level", "") == name) for name in level_order(checks)}


def _counts_text(counts: dict[str, int]) -> str:
    return (f"{counts['passed']} passed, {counts['failed']} failed, {counts['known_divergences']} known divergences, "
            f"{counts['skipped']} skipped")


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "…"


def render_markdown(document: dict[str, Any]) -> str:
    s = document["summary"]
    lines = ["# Conformance report", "",
             f"**{s['passed']} passed, {s['failed']} failed, {s['known_divergences']} known divergences, "
             f"{s['skipped']} skipped** ({s['total']} checks, {s['duration_s']} s)", ""]
    if document.get("stopped"):
        lines += [f"**Stopped before any check:** {document['stopped']}", ""]
    settings = {k: v for k, v in document.get("settings", {}).items() if v not in (None, False)}
    if settings:
        lines += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    marks = {"pass": "✅ pass", "fail": "❌ fail", "known-divergence": "⚠️ known divergence", "skip": "⏭ skip"}
    for name in level_order(document["checks"]):
        entries = [e for e in document["checks"] if e.get("level", "") == name]
        title = f"Level `{name}`: {LEVELS[name]}" if name in LEVELS else "Checks without a level"
        lines += [f"## {title}", "", f"{_counts_text(count_outcomes(entries))}", "",
                  "| outcome | target | check | clause | reason |", "|---|---|---|---|---|"]
        for entry in entries:
            lines.append(f"| {marks[entry['outcome']]} | {entry['target']} | `{entry['id']}` | {_cell(entry['clause'])} "
                         f"| {_cell(entry['reason'])} |")
        lines.append("")
    failed = [e for e in document["checks"] if e["outcome"] in ("fail", "known-divergence") and e["exchanges"]]
    if failed:
        lines += ["", "## Requests and responses of failed checks and known divergences", ""]
        for entry in failed:
            lines += [f"### `{entry['id']}` ({entry['target']}) — {entry['outcome']}", "", entry["reason"], ""]
            for exchange in entry["exchanges"][-3:]:
                lines += ["```http", f"{exchange['method']} {exchange['url']}"]
                if exchange["request_body"]:
                    lines.append(exchange["request_body"][:600])
                lines.append(f"--> {exchange['status']} {json.dumps(exchange['response_headers'])}")
                lines.append((exchange["response_body"] or exchange.get("error") or "")[:600])
                lines += ["```", ""]
    return "\n".join(lines) + "\n"
