"""The `workbench` command: one subcommand per job, each a module with `main(argv) -> int`.

Modules are imported only when their subcommand runs, so `workbench --help` is fast and a
subcommand's heavy imports (torch, kubernetes) cost nothing to the others. `workbench conformance`
runs the suite's own runner (`python -m conformance`) in a child process: the suite depends on
`workbench`, never the other way round.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("workbench.demo", "serve a tiny model built on the spot and answer sample V1/V2 requests"),
    "serve": ("workbench.serving.server", "serve a model over KServe V1 and the Open Inference Protocol (V2)"),
    "train": ("workbench.ner.train", "fine-tune a BERT-family model on CoNLL-style NER data (same as train/ner.py)"),
    "conformance": ("conformance", "check any V1/V2 endpoint with the conformance suite (python -m conformance)"),
    "bench": ("workbench.bench.cli", "measure throughput and latency of any V1/V2 endpoint (REST or gRPC)"),
    "manifests": ("workbench.k8s.manifests_cli", "generate KServe InferenceService manifests"),
    "deploy": ("workbench.k8s.deploy", "apply an InferenceService and wait until it is Ready"),
    "gate": ("workbench.gate", "train, serve, check and decide: a CI validation gate"),
    "tiny-model": ("workbench.testsupport.tiny_models", "write a tiny model for a task into a directory (for tests and demos)"),
}

# Run as `python -m MODULE` in a child process instead of imported (packages that import workbench).
RUN_AS_CHILD = {"conformance"}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: workbench <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `workbench <command> --help` for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from workbench import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"workbench: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if name in RUN_AS_CHILD:
        return subprocess.call([sys.executable, "-m", SUBCOMMANDS[name][0], *rest])
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


def run(argv: list[str] | None = None) -> int:
    """The console entry point: `main`, quiet when the reader of our output goes away (`| head`)."""
    try:
        code = main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at devnull so that flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(run())
