"""`workbench gate`: train, serve, check, decide — a CI validation gate with one Markdown summary.

    workbench gate                                   # fine-tune on the built-in sample, serve, check, decide
    workbench gate --train_file t.txt --validation_file v.txt --model_name_or_path bert-base-cased
    workbench gate --model-dir out --results out/results.json     # an already trained model: serve + check
    workbench gate --endpoint http://host:8080 --model-name ner   # a deployed service: check only
    workbench gate --isvc ner --namespace models                  # ... found through its InferenceService

Thresholds and what to run come from --config (default: ./gate.yaml, else the built-in defaults).
Exit status: 0 the gate passed, 1 it failed (the summary says why), 2 bad options or config.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from workbench.gate import steps
from workbench.gate.summary import render_summary
from workbench.gate.thresholds import ConfigError, GateConfig, decide, load_config

PACKAGED_CONFIG = Path(__file__).with_name("default.yaml")
# train/ner.py options the gate passes through (argparse dest -> type); anything after `--` goes verbatim.
TRAIN_OPTIONS = {
    "model_name_or_path": str, "train_file": str, "validation_file": str, "test_file": str,
    "num_train_epochs": int, "max_train_steps": int, "learning_rate": float, "max_train_samples": int,
    "max_eval_samples": int, "per_device_train_batch_size": int, "seed": int,
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench gate", description=__doc__.split("\n\n")[0],
                                epilog="Options after `--` are passed to train/ner.py unchanged.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="thresholds file, YAML or TOML (default: ./gate.yaml if present, "
                                    "else the built-in defaults)")
    p.add_argument("--summary", help="also write the Markdown summary here ($GITHUB_STEP_SUMMARY gets it too)")
    p.add_argument("--workdir", default="gate-output",
                   help="where the model, reports and logs go (default: gate-output)")
    train = p.add_argument_group("training (passed to train/ner.py; defaults from the config's train: section)")
    for name, kind in TRAIN_OPTIONS.items():
        train.add_argument(f"--{name}", type=kind, default=None)
    local = p.add_argument_group("an already trained model (skips training)")
    local.add_argument("--model-dir", help="serve and check this model directory instead of training one")
    deployed = p.add_argument_group("a deployed service (skips training and serving)")
    where = deployed.add_mutually_exclusive_group()
    where.add_argument("--endpoint", help="base URL of the deployed V1/V2 endpoint")
    where.add_argument("--isvc", help="KServe InferenceService name: find its URL, Host header and model name")
    deployed.add_argument("--namespace", default="default", help="namespace of --isvc (default: default)")
    deployed.add_argument("--ingress", metavar="HOST:PORT", help="ingress gateway address for --isvc")
    deployed.add_argument("--model-name", help="model name in the URLs (default: model, or the isvc's)")
    deployed.add_argument("--host-header", help="Host header to send (e.g. NAME.NS.example.com behind Istio)")
    deployed.add_argument("--mode", choices=tuple(steps.MODE_FLAGS),
                          help="output mode the deployed server runs (default: default, or the isvc's)")
    deployed.add_argument("--task", default=steps.TASK,
                          help=f"task the deployed model serves, for the suite's task checks (default {steps.TASK})")
    deployed.add_argument("--results", help="train/ner.py's results.json for the deployed model: checks F1 too")
    return p


@dataclasses.dataclass
class Plan:
    """What this run does, from the options: train | model_dir | endpoint."""
    kind: str
    config: GateConfig
    workdir: Path
    train_options: dict
    train_extra: list[str]


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        index = argv.index("--")
        argv, extra = argv[:index], argv[index + 1:]
    return build_parser().parse_args(argv), extra


def choose_config(path: str | None) -> GateConfig:
    if path:
        return load_config(path)
    if Path("gate.yaml").exists():
        return load_config("gate.yaml")
    return load_config(PACKAGED_CONFIG)


def usage_problem(args: argparse.Namespace, extra: list[str]) -> str | None:
    deployed = args.endpoint or args.isvc
    given_train = [f"--{name}" for name in TRAIN_OPTIONS if getattr(args, name) is not None]
    if deployed and args.model_dir:
        return "--model-dir serves a local model; --endpoint/--isvc check a deployed one: give one of them"
    if (deployed or args.model_dir) and (given_train or extra):
        return f"{(given_train or ['options after --'])[0]} is a training option; nothing is trained with " \
               f"{'--endpoint/--isvc' if deployed else '--model-dir'}"
    if not deployed and not args.model_dir and args.results:
        return "--results gives the scores of a model trained elsewhere: use it with --model-dir, --endpoint or --isvc"
    if not deployed and (args.mode or args.host_header or args.ingress):
        return "--mode, --host-header and --ingress apply to a deployed service (--endpoint or --isvc)"
    if args.model_dir and not Path(args.model_dir, "config.json").exists():
        return f"--model-dir {args.model_dir}: no config.json there (expected a trained model directory)"
    return None


def say(message: str) -> None:
    print(f"==> gate: {message}", flush=True)


# ------------------------------------------------------------------------------------------- runs

def check_served_model(model_dir: Path, config: GateConfig, results: dict, workdir: Path) -> None:
    """Serve `model_dir` once per configured mode; conformance in each, bench in the first."""
    settings = config.conformance
    modes = list(settings.modes) if settings.enabled else []
    if config.bench.enabled and not modes:
        modes = ["default"]
    for index, mode in enumerate(modes):
        say(f"serving {model_dir} (mode {mode})")
        try:
            with steps.serving(model_dir, mode, "model") as server:
                results["timings"][f"serve start ({mode})"] = server["start_s"]
                if settings.enabled and mode in settings.modes:
                    say(f"conformance suite, mode {mode}, protocol {settings.protocol}")
                    run = steps.run_conformance(
                        server["url"], workdir, mode=mode, model_name="model", protocol=settings.protocol,
                        profile=settings.profile, reference_model=model_dir if settings.reference_model else None)
                    results["conformance"].append(run)
                    results["timings"][f"conformance ({mode})"] = run["wall_s"]
                    say(_conformance_line(run))
                if config.bench.enabled and index == 0:
                    _bench(server["url"], "model", None, config, results, workdir)
        except steps.StepError as exc:
            results["errors"][f"serve ({mode})"] = str(exc)[:2000]
            say(str(exc)[:2000])


def check_endpoint(endpoint: str, model_name: str, host_header: str | None, mode: str, task: str | None,
                   config: GateConfig, results: dict, workdir: Path) -> None:
    settings = config.conformance
    if settings.enabled:
        say(f"conformance suite against {endpoint}, mode {mode}, protocol {settings.protocol}")
        run = steps.run_conformance(endpoint, workdir, mode=mode, model_name=model_name, protocol=settings.protocol,
                                    profile=settings.profile, task=task, host_header=host_header)
        results["conformance"].append(run)
        results["timings"][f"conformance ({mode})"] = run["wall_s"]
        say(_conformance_line(run))
    if config.bench.enabled:
        _bench(endpoint, model_name, host_header, config, results, workdir)


def _bench(endpoint: str, model_name: str, host_header: str | None, config: GateConfig, results: dict,
           workdir: Path) -> None:
    bench = config.bench
    say(f"workbench bench: protocol {bench.protocol}, concurrency {','.join(map(str, bench.concurrency))}, "
        f"{bench.requests} requests per level")
    results["bench"] = steps.run_bench(endpoint, workdir, model_name=model_name, protocol=bench.protocol,
                                       concurrency=bench.concurrency, requests=bench.requests,
                                       host_header=host_header)
    results["timings"]["bench"] = results["bench"]["wall_s"]


def _conformance_line(run: dict) -> str:
    if run["error"]:
        return f"conformance ({run['mode']}) did not complete: {run['error']}"
    s = run["summary"]
    failed = f" ({', '.join(c['id'] for c in run['failed'])})" if run["failed"] else ""
    return (f"conformance ({run['mode']}): {s['passed']} passed, {s['failed']} failed{failed}, "
            f"{s['known_divergences']} known divergences, {s['skipped']} skipped; log {run['log']}")


def train_options(args: argparse.Namespace, config: GateConfig) -> dict:
    options = dict(config.train)
    options.update({name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None})
    return options


# What a gate run writes into its workdir (besides the trained model): removed before each run, so an
# earlier run's reports (another mode's conformance report, an old bench) never sit beside the new ones.
GATE_OUTPUTS = ("gate-summary.md", "gate-results.json", "conformance-*.json", "conformance-*.md",
                "conformance-*.log", "bench.json", "bench*.png", "bench*.md")


def remove_earlier_outputs(workdir: Path) -> list[Path]:
    """Delete the reports an earlier gate run left in `workdir`; returns what was removed."""
    removed = []
    for pattern in GATE_OUTPUTS:
        for path in sorted(workdir.glob(pattern)):
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def run_gate(args: argparse.Namespace, extra: list[str], config: GateConfig) -> tuple[dict, GateConfig]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    remove_earlier_outputs(workdir)
    results: dict = {"target": {}, "training": None, "conformance": [], "bench": None, "timings": {}, "errors": {}}
    started = time.perf_counter()
    if args.endpoint or args.isvc:
        endpoint, model_name, host_header = args.endpoint, args.model_name or "model", args.host_header
        mode, task = args.mode or "default", args.task
        results["target"] = {"kind": "endpoint", "endpoint": endpoint, "model_name": model_name,
                             "host_header": host_header}
        if args.isvc:
            from workbench.k8s.discovery import DiscoveryError, resolve_isvc

            say(f"finding InferenceService {args.namespace}/{args.isvc}")
            try:
                found = resolve_isvc(args.isvc, args.namespace, ingress=args.ingress)
            except DiscoveryError as exc:
                results["errors"]["endpoint discovery"] = str(exc)
                results["target"].update(endpoint=None, isvc=f"{args.namespace}/{args.isvc}")
                return _finish(results, started), config
            endpoint, host_header = found.base_url, args.host_header or found.host_header
            model_name, mode = args.model_name or found.model_name, args.mode or found.mode
            task = task if task != steps.TASK else (found.task or task)
            results["target"].update(endpoint=endpoint, model_name=model_name, host_header=host_header,
                                     isvc=f"{args.namespace}/{args.isvc}")
        # A deployed server runs one output mode: check that one.
        config = dataclasses.replace(config, conformance=dataclasses.replace(config.conformance, modes=(mode,)))
        if args.results:
            results["training"] = steps.read_training_results(Path(args.results))
        check_endpoint(endpoint, model_name, host_header, mode, task, config, results, workdir)
        return _finish(results, started), config
    if args.model_dir:
        model_dir = Path(args.model_dir)
        results["target"] = {"kind": "model_dir", "model_dir": str(model_dir)}
        results_path = Path(args.results) if args.results else model_dir / "results.json"
        if results_path.exists() or args.results:
            results["training"] = steps.read_training_results(results_path)
        check_served_model(model_dir, config, results, workdir)
        return _finish(results, started), config
    options = train_options(args, config)
    base_note = options.get("model_name_or_path")
    if not base_note:
        options["model_name_or_path"], base_note = steps.default_base_model(workdir)
    data = options.get("train_file") or "the built-in sample (workbench/ner/sample.py)"
    shown = {k: v for k, v in options.items() if k not in ("model_name_or_path", "train_file", "validation_file")}
    results["target"] = {"kind": "trained", "base_model": base_note, "data": data,
                         "options": " ".join(f"--{k} {v}" for k, v in shown.items()) + (" " + " ".join(extra) if extra else "")}
    model_dir = workdir / "model"
    say(f"training {base_note} on {data} -> {model_dir}")
    try:
        results["training"] = steps.train_model(model_dir, options, extra)
        results["timings"]["training"] = results["training"]["gate_wall_s"]
    except steps.StepError as exc:
        results["errors"]["training"] = str(exc)
        return _finish(results, started), config
    check_served_model(model_dir, config, results, workdir)
    return _finish(results, started), config


def _finish(results: dict, started: float) -> dict:
    results["timings"]["total"] = round(time.perf_counter() - started, 1)
    return results


def write_outputs(summary: str, results: dict, workdir: Path, summary_path: str | None) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "gate-summary.md").write_text(summary, encoding="utf-8")
    (workdir / "gate-results.json").write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if summary_path:
        Path(summary_path).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_path).write_text(summary, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = parse(sys.argv[1:] if argv is None else argv)
    problem = usage_problem(args, extra)
    if problem:
        print(f"workbench gate: {problem}", file=sys.stderr)
        return 2
    try:
        config = choose_config(args.config)
    except ConfigError as exc:
        print(f"workbench gate: {exc}", file=sys.stderr)
        return 2
    try:
        results, config = run_gate(args, extra, config)
    except steps.StepError as exc:  # bad --results file: a usage problem
        print(f"workbench gate: {exc}", file=sys.stderr)
        return 2
    decision = decide(results, config)
    results["decision"] = {"passed": decision.passed, "reasons": decision.reasons}
    summary = render_summary(results, config, decision)
    print("\n" + summary, flush=True)
    write_outputs(summary, results, Path(args.workdir), args.summary)
    return 0 if decision.passed else 1
