"""The gate's config file (gate.yaml): thresholds, what to run, training defaults; and the decision.

`load_config(path)` reads and validates the file (YAML, or TOML when the name ends in .toml) and
raises ConfigError naming the bad key. `decide(results, config)` is pure: it compares what the gate
measured (a plain dict, see steps.py) with the thresholds and returns a Decision with one row per
threshold and the reasons for a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("default", "probabilities", "logits")
PROTOCOLS = ("v1", "v2", "both")
PROFILES = ("strict", "kserve", "mlserver", "triton")  # conformance/profiles.py
NOT_MEASURED = "not measured"
PROTOCOL_SKIP = "not checked (--protocol)"  # the suite's skip reason for a protocol not asked for


class ConfigError(ValueError):
    """The config file is missing, unreadable or has a bad key or value; the message names it."""


@dataclass(frozen=True)
class F1Thresholds:
    overall: float | None = None
    per_entity: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConformanceSettings:
    enabled: bool = True
    modes: tuple[str, ...] = ("default",)
    protocol: str = "both"
    profile: str = "strict"
    reference_model: bool = True
    max_failed: int = 0
    max_known_divergences: int | None = None
    # Too few checks ran (a misconfigured run skips instead of failing): a floor on passes per mode and a cap
    # on the fraction skipped (skips of a protocol not asked for, conformance.protocol, do not count).
    min_passed: int | None = 20
    max_skipped_fraction: float | None = 0.5


@dataclass(frozen=True)
class BenchSettings:
    enabled: bool = False
    protocol: str = "v1"
    concurrency: tuple[int, ...] = (1, 8)
    requests: int = 50
    min_requests_per_s: float | None = None
    max_p50_latency_ms: float | None = None
    max_p99_latency_ms: float | None = None
    max_errors: int = 0


@dataclass(frozen=True)
class GateConfig:
    f1: F1Thresholds = field(default_factory=F1Thresholds)
    conformance: ConformanceSettings = field(default_factory=ConformanceSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    train: dict[str, Any] = field(default_factory=dict)
    source: str = "(built-in defaults)"


# ---------------------------------------------------------------------------------------- parsing

def _check_keys(section: str, data: Any, allowed: tuple[str, ...]) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown key (allowed: {', '.join(allowed)})")
    return data


def _fraction(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{key}: expected a number between 0 and 1, got {value!r}")
    return float(value)


def _positive(key: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0 or (value == 0 and not allow_zero):
        what = "an integer" if integer else "a number"
        raise ConfigError(f"{key}: expected {what} {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def parse_f1(data: Any) -> F1Thresholds:
    data = _check_keys("f1", data, ("overall", "per_entity"))
    per_entity = _check_keys("f1.per_entity", data.get("per_entity"), tuple(map(str, (data.get("per_entity") or {}))))
    return F1Thresholds(
        overall=_fraction("f1.overall", data.get("overall")),
        per_entity={str(name): _fraction(f"f1.per_entity.{name}", value) for name, value in per_entity.items()
                    if value is not None},
    )


def parse_conformance(data: Any) -> ConformanceSettings:
    data = _check_keys("conformance", data, ("enabled", "modes", "protocol", "profile", "reference_model",
                                              "max_failed", "max_known_divergences", "min_passed",
                                              "max_skipped_fraction"))
    base = ConformanceSettings()
    modes = data.get("modes", list(base.modes))
    if isinstance(modes, str):
        modes = [modes]
    if not isinstance(modes, list):
        raise ConfigError(f"conformance.modes: expected a list of {', '.join(MODES)}, got {modes!r}")
    for mode in modes:
        _choice("conformance.modes", mode, MODES)
    return ConformanceSettings(
        enabled=_bool("conformance.enabled", data.get("enabled", True)),
        modes=tuple(dict.fromkeys(modes)),
        protocol=_choice("conformance.protocol", data.get("protocol", base.protocol), PROTOCOLS),
        profile=_choice("conformance.profile", data.get("profile", base.profile), PROFILES),
        reference_model=_bool("conformance.reference_model", data.get("reference_model", base.reference_model)),
        max_failed=_positive("conformance.max_failed", data.get("max_failed", 0), integer=True, allow_zero=True),
        max_known_divergences=_positive("conformance.max_known_divergences", data.get("max_known_divergences"),
                                        integer=True, allow_zero=True),
        min_passed=_positive("conformance.min_passed", data.get("min_passed", base.min_passed), integer=True,
                             allow_zero=True),
        max_skipped_fraction=_fraction("conformance.max_skipped_fraction",
                                       data.get("max_skipped_fraction", base.max_skipped_fraction)),
    )


def parse_bench(data: Any) -> BenchSettings:
    data = _check_keys("bench", data, ("enabled", "protocol", "concurrency", "requests", "min_requests_per_s",
                                       "max_p50_latency_ms", "max_p99_latency_ms", "max_errors"))
    base = BenchSettings()
    concurrency = data.get("concurrency", list(base.concurrency))
    if isinstance(concurrency, int) and not isinstance(concurrency, bool):
        concurrency = [concurrency]
    if (not isinstance(concurrency, list) or not concurrency
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in concurrency)):
        raise ConfigError(f"bench.concurrency: expected a list of integers >= 1, got {concurrency!r}")
    return BenchSettings(
        enabled=_bool("bench.enabled", data.get("enabled", base.enabled)),
        protocol=_choice("bench.protocol", data.get("protocol", base.protocol), ("v1", "v2")),
        concurrency=tuple(concurrency),
        requests=_positive("bench.requests", data.get("requests", base.requests), integer=True),
        min_requests_per_s=_positive("bench.min_requests_per_s", data.get("min_requests_per_s")),
        max_p50_latency_ms=_positive("bench.max_p50_latency_ms", data.get("max_p50_latency_ms")),
        max_p99_latency_ms=_positive("bench.max_p99_latency_ms", data.get("max_p99_latency_ms")),
        max_errors=_positive("bench.max_errors", data.get("max_errors", 0), integer=True, allow_zero=True),
    )


def parse_train(data: Any) -> dict[str, Any]:
    """Default options for train/ner.py, by its flag names without dashes (command-line options win)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"train: expected a mapping of train/ner.py options, got {type(data).__name__}")
    from workbench.ner.train import build_parser

    known = {action.dest for action in build_parser()._actions if action.dest != "help"}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"train.{key}: not an option of train/ner.py (see `python train/ner.py --help`)")
        if key == "output_dir":
            raise ConfigError("train.output_dir: the gate chooses the output directory (use --workdir)")
        if isinstance(value, (dict, list)):
            raise ConfigError(f"train.{key}: expected a single value, got {value!r}")
    return dict(data)


def parse_config(data: Any, source: str = "(inline)") -> GateConfig:
    data = _check_keys("top level", data, ("f1", "conformance", "bench", "train"))
    return GateConfig(f1=parse_f1(data.get("f1")), conformance=parse_conformance(data.get("conformance")),
                      bench=parse_bench(data.get("bench")), train=parse_train(data.get("train")), source=source)


def _toml_module():
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("a TOML config needs Python 3.11+ or `pip install tomli`; or use YAML") from None
    return tomllib


def load_config(path: str | Path) -> GateConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the gate config ({exc.strerror or exc})") from None
    try:
        if path.suffix == ".toml":
            data = _toml_module().loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError / tomllib.TOMLDecodeError: report, do not trace back
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {exc}") from None
    try:
        return parse_config(data or {}, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------- decision

@dataclass(frozen=True)
class Check:
    """One threshold compared with what was measured: outcome is pass, fail or not measured."""
    group: str  # "F1", "conformance", "bench"
    name: str
    measured: str
    limit: str
    outcome: str


@dataclass(frozen=True)
class Decision:
    passed: bool
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)


def _fmt(value: float | None, digits: int = 3) -> str:
    return NOT_MEASURED if value is None else f"{value:.{digits}f}"


def decide_f1(training: dict | None, f1: F1Thresholds) -> list[Check]:
    best = (training or {}).get("best") or {}
    checks = []
    if f1.overall is not None:
        value = best.get("overall_f1")
        outcome = NOT_MEASURED if value is None else ("pass" if value >= f1.overall else "fail")
        checks.append(Check("F1", "overall", _fmt(value), f">= {f1.overall:.3f}", outcome))
    per_entity = best.get("per_entity") or {}
    for name, floor in f1.per_entity.items():
        if not best:
            checks.append(Check("F1", name, NOT_MEASURED, f">= {floor:.3f}", NOT_MEASURED))
        elif name not in per_entity:
            checks.append(Check("F1", name, "absent from the validation data", f">= {floor:.3f}", "fail"))
        else:
            value = per_entity[name]["f1"]
            checks.append(Check("F1", name, _fmt(value), f">= {floor:.3f}", "pass" if value >= floor else "fail"))
    return checks


def decide_conformance(runs: list[dict] | None, settings: ConformanceSettings) -> list[Check]:
    if not settings.enabled or not settings.modes:
        return []
    runs = runs or []
    checks = []
    done = {run["mode"]: run for run in runs}
    for mode in settings.modes:
        run = done.get(mode)
        name = f"mode {mode}"
        if run is None:
            checks.append(Check("conformance", name, "not run", f"<= {settings.max_failed} failed", "fail"))
            continue
        if run.get("error"):
            checks.append(Check("conformance", name, f"did not complete: {run['error']}",
                                f"<= {settings.max_failed} failed", "fail"))
            continue
        summary = run["summary"]
        ids = list(dict.fromkeys(c["id"] for c in run.get("failed", [])))
        failed_ids = ", ".join(f"`{i}`" for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        measured = f"{summary['passed']} passed, {summary['failed']} failed" + (f" ({failed_ids})" if failed_ids else "")
        checks.append(Check("conformance", name, measured, f"<= {settings.max_failed} failed",
                            "pass" if summary["failed"] <= settings.max_failed else "fail"))
        checks += _enough_ran(mode, run, settings)
        if settings.max_known_divergences is not None:
            known = summary.get("known_divergences", 0)
            checks.append(Check("conformance", f"mode {mode} known divergences", str(known),
                                f"<= {settings.max_known_divergences}",
                                "pass" if known <= settings.max_known_divergences else "fail"))
    return checks


def _most_skipped_for(run: dict) -> str:
    """"most for 'needs --task ...' (480)": the commonest reason of the skips that count."""
    reasons = {reason: count for reason, count in (run.get("skip_reasons") or {}).items()
               if not reason.endswith(PROTOCOL_SKIP)}
    if not reasons:
        return ""
    reason, count = max(reasons.items(), key=lambda pair: pair[1])
    shown = reason if len(reason) <= 120 else reason[:120] + "…"
    return f"; most for {shown!r} ({count})"


def _enough_ran(mode: str, run: dict, settings: ConformanceSettings) -> list[Check]:
    """The floor on passed checks and the cap on skipped ones: a run that skips most checks does not pass."""
    summary = run["summary"]
    by_protocol = run.get("skipped_by_protocol", 0)
    skipped, considered = summary.get("skipped", 0) - by_protocol, summary.get("total", 0) - by_protocol
    why = _most_skipped_for(run)
    checks = []
    if settings.min_passed is not None:
        passed = summary.get("passed", 0)
        ok = passed >= settings.min_passed
        measured = f"{passed} passed of {summary.get('total', 0)}" + ("" if ok else f": too few checks ran, "
                                                                         f"{skipped} skipped{why}")
        checks.append(Check("conformance", f"mode {mode} checks passed", measured, f">= {settings.min_passed} passed",
                            "pass" if ok else "fail"))
    if settings.max_skipped_fraction is not None:
        fraction = skipped / considered if considered > 0 else 0.0
        ok = fraction <= settings.max_skipped_fraction
        measured = f"{skipped} of {considered} skipped ({fraction:.0%})" + ("" if ok else f"{why}")
        checks.append(Check("conformance", f"mode {mode} checks skipped", measured,
                            f"<= {settings.max_skipped_fraction:.0%} skipped", "pass" if ok else "fail"))
    return checks


def decide_bench(bench: dict | None, settings: BenchSettings) -> list[Check]:
    if not settings.enabled:
        return []
    if bench is None or bench.get("error") or not bench.get("levels"):
        error = (bench or {}).get("error") or "no measurement"
        return [Check("bench", "run", f"did not complete: {error}", "completes", "fail")]
    levels = bench["levels"]
    errors = sum(level["error_count"] for level in levels)
    checks = [Check("bench", "failed requests", str(errors), f"<= {settings.max_errors}",
                    "pass" if errors <= settings.max_errors else "fail")]
    if settings.min_requests_per_s is not None:
        best = max(levels, key=lambda level: level["requests_per_s"])
        value = best["requests_per_s"]
        checks.append(Check("bench", f"throughput (best level, concurrency {best['concurrency']})",
                            f"{value:.1f} req/s", f">= {settings.min_requests_per_s:g} req/s",
                            "pass" if value >= settings.min_requests_per_s else "fail"))
    lowest = min(levels, key=lambda level: level["concurrency"])
    for key, limit in (("p50", settings.max_p50_latency_ms), ("p99", settings.max_p99_latency_ms)):
        if limit is None:
            continue
        value = lowest["latency_ms"][key]
        outcome = NOT_MEASURED if value is None else ("pass" if value <= limit else "fail")
        checks.append(Check("bench", f"{key} latency (concurrency {lowest['concurrency']})",
                            NOT_MEASURED if value is None else f"{value:.1f} ms", f"<= {limit:g} ms",
                            "fail" if value is None else outcome))
    return checks


def decide(results: dict, config: GateConfig) -> Decision:
    """Pass when no threshold failed. F1 thresholds without a training run are "not measured", not passed."""
    checks = (decide_f1(results.get("training"), config.f1)
              + decide_conformance(results.get("conformance"), config.conformance)
              + decide_bench(results.get("bench"), config.bench))
    reasons = [f"{c.group} {c.name}: {c.measured} (required {c.limit})" for c in checks if c.outcome == "fail"]
    reasons += [f"{step}: {error}" for step, error in (results.get("errors") or {}).items()]
    return Decision(passed=not reasons, reasons=reasons, checks=checks)
