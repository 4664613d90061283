"""The GitHub Actions workflow a user copies: YAML that yamllint accepts, valid Actions structure,
and `workbench gate` command lines that the gate's own parser accepts. (It cannot run here.)"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workbench.gate.cli import build_parser

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "workbench.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [WORKFLOW, REPO_ROOT / "gate.yaml"], ids=["workflow", "gate.yaml"])
def test_yamllint_accepts_it(path):
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    problems = list(linter.run(path.read_text(encoding="utf-8"), YamlLintConfig("extends: default"), str(path)))
    assert not problems, "\n".join(f"{path.name}:{p.line}:{p.column} {p.level} {p.desc} ({p.rule})" for p in problems)


def test_github_actions_structure():
    workflow = load()
    assert set(workflow["on"]) >= {"push", "pull_request", "workflow_dispatch"}
    jobs = workflow["jobs"]
    assert set(jobs) == {"unit-tests", "gate", "post-deployment"}
    for name, job in jobs.items():
        assert isinstance(job["runs-on"], str), name
        needs = job.get("needs", [])
        assert set([needs] if isinstance(needs, str) else needs) <= set(jobs), name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: a step has exactly one of uses/run: {step}"
    assert "workflow_dispatch" in jobs["post-deployment"]["if"]
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert {"endpoint", "isvc", "namespace"} <= set(inputs)
    for key, spec in inputs.items():
        assert spec["type"] == "string" and spec["description"], key


@pytest.mark.skipif(shutil.which("check-jsonschema") is None, reason="check-jsonschema is not installed")
def test_schemastore_github_workflow_schema_accepts_it():
    """check-jsonschema ships SchemaStore's GitHub workflow schema: validated offline."""
    completed = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                               capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def gate_command_lines() -> list[list[str]]:
    lines = []
    for job in load()["jobs"].values():
        for step in job["steps"]:
            text = " ".join(step.get("run", "").split())
            if text.startswith("workbench gate "):
                lines.append(shlex.split(text)[2:])
    return lines


def test_gate_command_lines_parse():
    lines = gate_command_lines()
    assert lines, "the gate job runs `workbench gate`"
    for argv in lines:
        args = build_parser().parse_args(argv)
        assert args.config == "gate.yaml" and args.summary
