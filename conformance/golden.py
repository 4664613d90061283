"""Golden expectation files (`--expect FILE`): load, select by model and mode, compare.

A file is JSON:

    {"description": "...",
     "model": "dslim/bert-base-NER",            # optional default for the cases
     "cases": [{"id": "seed-001",
                "model": "dslim/bert-base-NER",  # hub id (or any name)
                "model_names": ["bert"],         # optional: URL model names this case applies to
                "task": "token_classification",
                "flags": ["--disable_lower_case"],  # the server flags the expectation assumes
                "mode": "default",               # optional: derived from flags (--return_probabilities, ...)
                "protocol": "both",              # v1 | v2 | both
                "inputs": ["text", ...],
                "expected": {"v1": <predictions>, "v2": {"shape": [...], "datatype": "...", "data": [...]}},
                "source": "where the expectation comes from"}]}

A case applies to an endpoint when `--model-name` equals its `model`, the last part of it
(`bert-base-NER`, case-insensitive) or one of its `model_names`, and its mode is the endpoint's mode.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance import semantics

EXPECTATIONS_DIR = Path(__file__).parent / "expectations"
LOGIT_FLAGS = ("--return_raw_logits", "--return_logits", "--disable_postprocess")


class ExpectationError(ValueError):
    pass


@dataclass
class Case:
    id: str
    model: str
    task: str
    mode: str
    inputs: list[str]
    expected: dict[str, Any]
    flags: list[str] = field(default_factory=list)
    protocol: str = "both"
    model_names: list[str] = field(default_factory=list)
    source: str = ""

    def applies_to(self, model_name: str) -> bool:
        names = {self.model, self.model.rsplit("/", 1)[-1].lower(), *self.model_names}
        return model_name in names or model_name.lower() in names

    def protocols(self) -> tuple[str, ...]:
        return ("v1", "v2") if self.protocol == "both" else (self.protocol,)


def mode_from_flags(flags: list[str]) -> str:
    if "--return_probabilities" in flags:
        return "probabilities"
    if "--return_raw_logits" in flags:
        return "logits"
    return "default"


def parse_case(raw: dict, defaults: dict, where: str) -> Case:
    merged = {**defaults, **raw}
    for key in ("model", "task", "inputs", "expected"):
        if key not in merged:
            raise ExpectationError(f"{where}: missing {key!r}")
    if merged["task"] not in semantics.SUITE_TASKS:
        raise ExpectationError(f"{where}: task {merged['task']!r} not one of {semantics.SUITE_TASKS}")
    inputs = merged["inputs"]
    if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs) or not inputs:
        raise ExpectationError(f"{where}: 'inputs' must be a non-empty list of strings")
    expected = merged["expected"]
    if not isinstance(expected, dict) or not set(expected) & {"v1", "v2"}:
        raise ExpectationError(f"{where}: 'expected' must hold 'v1' and/or 'v2'")
    flags = list(merged.get("flags", []))
    mode = merged.get("mode") or mode_from_flags(flags)
    if mode not in semantics.MODES:
        raise ExpectationError(f"{where}: mode {mode!r} not one of {semantics.MODES}")
    protocol = merged.get("protocol", "both")
    if protocol not in ("v1", "v2", "both"):
        raise ExpectationError(f"{where}: protocol {protocol!r} not v1, v2 or both")
    return Case(id=str(merged.get("id", where)), model=merged["model"], task=merged["task"], mode=mode,
                inputs=inputs, expected=expected, flags=flags, protocol=protocol,
                model_names=list(merged.get("model_names", [])), source=merged.get("source", ""))


def load_expectations(path: str | Path) -> list[Case]:
    """Cases of one file, or of every *.json file when `path` is a directory."""
    path = Path(path)
    if not path.exists() and (EXPECTATIONS_DIR / path).exists():
        path = EXPECTATIONS_DIR / path  # a name of a file shipped with the suite
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    cases: list[Case] = []
    for file in files:
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ExpectationError(f"{file}: cannot read expectations: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("cases"), list):
            raise ExpectationError(f"{file}: expected an object with a 'cases' list")
        defaults = {k: v for k, v in document.items() if k in ("model", "task", "flags", "protocol", "model_names")}
        cases += [parse_case(raw, defaults, f"{file.name} case {i}") for i, raw in enumerate(document["cases"])]
    return cases


def flags_agree(case: Case, lower_case: bool, special_tokens: bool) -> bool:
    """A case recorded with --disable_lower_case / --disable_special_tokens applies only to such an endpoint."""
    return (("--disable_lower_case" in case.flags) == (not lower_case)
            and ("--disable_special_tokens" in case.flags) == (not special_tokens))


def select_cases(cases: list[Case], model_name: str, mode: str, task: str | None = None, *,
                 lower_case: bool = True, special_tokens: bool = True) -> tuple[list[Case], str]:
    """The cases for this endpoint, and a sentence saying why the others were left out."""
    by_model = [c for c in cases if c.applies_to(model_name)]
    if not by_model:
        models = sorted({c.model for c in cases})
        return [], f"no case for model name {model_name!r} (cases cover {models}; match by --model-name or 'model_names')"
    by_mode = [c for c in by_model if c.mode == mode and (task is None or c.task == task)]
    if not by_mode:
        return [], (f"{len(by_model)} case(s) for {model_name!r}, none for mode {mode!r}"
                    + (f" and task {task!r}" if task else "") + f" (modes: {sorted({c.mode for c in by_model})})")
    selected = [c for c in by_mode if flags_agree(c, lower_case, special_tokens)]
    if not selected:
        return [], (f"{len(by_mode)} case(s) for {model_name!r} in mode {mode!r}, none recorded with this endpoint's "
                    f"case/special-token flags (cases: {[c.flags for c in by_mode]}; see --disable-lower-case, "
                    "--disable-special-tokens)")
    return selected, ""


def expected_rows(case: Case, protocol: str) -> list:
    if protocol == "v1":
        return semantics.v1_rows(case.task, case.mode, case.expected["v1"], len(case.inputs))
    return semantics.v2_rows(case.task, case.mode, {"name": "output-0", **case.expected["v2"]}, len(case.inputs))


def compare_case(case: Case, protocol: str, got_rows: list, got_tensor: dict | None = None) -> list[str]:
    """Differences between an endpoint's answer and a golden case ([] when it matches)."""
    key = protocol if protocol in case.expected else ("v1" if "v1" in case.expected else "v2")
    problems: list[str] = []
    if protocol == "v2" and key == "v2" and got_tensor is not None:
        want = case.expected["v2"]
        for field_name in ("shape", "datatype"):
            if field_name in want and got_tensor.get(field_name) != want[field_name]:
                problems.append(f"{field_name} {got_tensor.get(field_name)!r}, expected {want[field_name]!r}")
    problems += semantics.compare_rows(case.task, case.mode, got_rows, expected_rows(case, key))
    return [f"case {case.id}: {p}" for p in problems]


def golden_case_from_reference(reference, case_id: str, model: str, mode: str, texts: list[str],
                               flags: list[str] | None = None, model_names: list[str] | None = None) -> dict:
    """A golden case computed from a local model (used to make expectation files for tiny models)."""
    from workbench.tasks import MODE_FLAGS

    predictions = reference.predictions(texts, mode)
    case = {"id": case_id, "model": model, "task": reference.task, "mode": mode,
            "flags": list(flags if flags is not None else MODE_FLAGS[mode]), "inputs": list(texts),
            "expected": {"v1": predictions}, "source": f"computed with conformance.reference from {reference.source}"}
    if model_names:
        case["model_names"] = list(model_names)
    return case
