"""`--conformance-report PATH`: a JSON and a Markdown report of every check.

Files: when PATH ends in `.json`, the JSON goes to PATH and the Markdown next to it with `.md`
(`out.json` -> `out.json` + `out.md`); otherwise to `PATH.json` and `PATH.md`.

JSON: {"summary": {"passed", "failed", "known_divergences", "skipped", "total", "duration_s"},
       "settings": {...}, "checks": [{"id", "name", "clause", "target", "nodeid", "outcome", "reason",
       "duration_s", "exchanges": [...]}]}
outcome is pass | fail | known-divergence | skip; `exchanges` (request sent, response received:
status, a subset of headers, body truncated) are kept for failures and known divergences.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

OUTCOME_KEYS = {"pass": "passed", "fail": "failed", "known-divergence": "known_divergences", "skip": "skipped"}


def report_paths(path: str | Path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix == ".json":
        return path, path.with_suffix(".md")
    return Path(f"{path}.json"), Path(f"{path}.md")


def check_id(item: pytest.Item) -> str:
    name = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    name = name[len("test_"):] if name.startswith("test_") else name
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "proto" in params:
        name += f"[{params['proto']}]"
    return name


def target_id(item: pytest.Item) -> str:
    spec = getattr(getattr(item, "callspec", None), "params", {}).get("target")
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

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        entry = self.checks.get(item.nodeid)
        if entry is None:
            doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines() if hasattr(item, "function") else []
            marker = item.get_closest_marker("clause")
            entry = {"id": check_id(item), "name": doc[0] if doc else item.name, "clause": marker.args[0] if marker else "",
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
        counts = {key: 0 for key in OUTCOME_KEYS.values()}
        for entry in self.checks.values():
            counts[OUTCOME_KEYS[entry["outcome"]]] += 1
        counts["total"] = len(self.checks)
        counts["duration_s"] = round(time.monotonic() - self.started, 2)
        return counts

    def settings(self) -> dict[str, Any]:
        names = ("endpoint", "model_name", "task", "protocol", "mode", "profile", "expect", "reference_model",
                 "host_header", "serve_with", "isvc", "namespace")
        return {name: self.config.getoption(name, default=None) for name in names}

    def document(self) -> dict[str, Any]:
        return {"summary": self.summary(), "settings": self.settings(), "checks": list(self.checks.values())}

    def pytest_sessionfinish(self, session):
        document = self.document()
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(document, indent=2, default=str), encoding="utf-8")
        self.md_path.write_text(render_markdown(document), encoding="utf-8")

    def pytest_terminal_summary(self, terminalreporter):
        s = self.summary()
        terminalreporter.write_line(
            f"conformance: {s['passed']} passed, {s['failed']} failed, {s['known_divergences']} known divergences, "
            f"{s['skipped']} skipped -> {self.json_path} / {self.md_path}")


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[:limit] + "…"


def render_markdown(document: dict[str, Any]) -> str:
    s = document["summary"]
    lines = ["# Conformance report", "",
             f"**{s['passed']} passed, {s['failed']} failed, {s['known_divergences']} known divergences, "
             f"{s['skipped']} skipped** ({s['total']} checks, {s['duration_s']} s)", ""]
    settings = {k: v for k, v in document.get("settings", {}).items() if v not in (None, False)}
    if settings:
        lines += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()), ""]
    lines += ["| outcome | target | check | clause | reason |", "|---|---|---|---|---|"]
    marks = {"pass": "✅ pass", "fail": "❌ fail", "known-divergence": "⚠️ known divergence", "skip": "⏭ skip"}
    for entry in document["checks"]:
        lines.append(f"| {marks[entry['outcome']]} | {entry['target']} | `{entry['id']}` | {_cell(entry['clause'])} "
                     f"| {_cell(entry['reason'])} |")
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
