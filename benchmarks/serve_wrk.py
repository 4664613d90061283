"""The serving benchmark: KServe's real Hugging Face runtime and our predictor in each backend and dtype,
same model, same varied texts, one text per V2 request, `wrk` as the load generator, one run.

    python benchmarks/serve_wrk.py --model_dir DIR [--servers kserve-runtime,ours,ort-int8] \\
        [--concurrency 1,8,32,64] [--seconds 10] [--texts FILE] [--count 2000] [--repeated] [--task T] [--json out.json]

- Texts: the first `--count` CoNLL-2003 validation sentences (`../shared`), else the project's sample,
  each request the next text in turn (`--repeated`: one fixed sentence, for comparison only).
- Servers start one at a time, so each has the machine alone. KServe's real runtime runs from
  `.venv-kserve` (`WORKBENCH_KSERVE_PYTHON`), installed from `../shared/kserve`.
- Also the bare model's ceiling on the same texts (`serving_ceiling.py`: forward passes only, no padding,
  at our default thread count and at all usable CPUs, the faster counts), and each server's throughput
  at concurrency 32 as a share of it.
- Why `wrk`: on a 2-core machine a Python load generator needs a core of its own at ~90 requests/s and
  becomes the bottleneck; `wrk` (C, one thread, `apt-get install wrk`) uses a few percent of one.

A script that prints figures, not a test. Figures measured with it are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from corpus import benchmark_texts  # noqa: E402
from serving_ceiling import measure_ceiling, print_ceiling  # noqa: E402

from workbench.bench.measure import padding_efficiency, scrape_tokens  # noqa: E402
from workbench.testsupport.kserve_runtime import served_runtime  # noqa: E402
from workbench.testsupport.servers import served  # noqa: E402

# name -> (description, our server's flags; None = KServe's real runtime)
SERVERS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "kserve-runtime": ("KServe huggingfaceserver (real runtime, its defaults)", None),
    "ours": ("ours, torch, default flags (--dtype auto)", ()),
    "ours-bf16": ("ours, torch, --dtype bfloat16", ("--dtype", "bfloat16")),
    "ours-2workers": ("ours, torch, --model_workers 2 (one thread each)", ("--model_workers", "2")),
    "ours-2threads": ("ours, torch, --num_threads 2", ("--num_threads", "2")),
    "ours-1thread": ("ours, torch, --num_threads 1 (for a node shared with busy neighbours)", ("--num_threads", "1")),
    "ours-padded": ("ours, torch, --disable_packing", ("--disable_packing",)),
    "ours-unbatched": ("ours, torch, --max_batch_size 1", ("--max_batch_size", "1")),
    "ort": ("ours, --backend onnxruntime", ("--backend", "onnxruntime")),
    "ort-int8": ("ours, --backend onnxruntime --quantize int8", ("--backend", "onnxruntime", "--quantize", "int8")),
    "ort-int8-1worker": ("ours, --backend onnxruntime --quantize int8 --model_workers 1",
                         ("--backend", "onnxruntime", "--quantize", "int8", "--model_workers", "1")),
}
DEFAULT_SERVERS = "kserve-runtime,ours,ours-bf16,ours-padded,ort,ort-int8"
REPEATED_TEXT = "Peter Blackburn of the European Commission said on Thursday it disagreed with German advice"


def v2_body(text: str) -> str:
    return json.dumps({"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": [text]}]})


def lua_script(bodies: list[str]) -> str:
    """A wrk script that POSTs the bodies in turn (one wrk thread: one Lua state, one shared counter)."""
    level = 1
    while any(f"]{'=' * level}]" in body for body in bodies):
        level += 1
    quote_open, quote_close = f"[{'=' * level}[", f"]{'=' * level}]"
    table = ",\n".join(f"{quote_open}{body}{quote_close}" for body in bodies)
    return ('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"local bodies = {{\n{table}\n}}\nlocal i = 0\n"
            "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n")


def parse_wrk(out: str) -> dict:
    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50%"), "p99": ms("99%"),
            "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, socket.groups())) if socket else 0)}


def run_wrk(url: str, connections: int, seconds: int, script: Path) -> dict:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script), "--latency", url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def measure_server(name: str, base_url: str, levels: list[int], seconds: int, script: Path) -> dict:
    url = f"{base_url}/v2/models/model/infer"
    run_wrk(url, 8, 3, script)  # warm-up: first batches, allocator, caches
    print(f"\n== {SERVERS[name][0]}   (load average {os.getloadavg()[0]:.2f})")
    print(f"{'concurrency':>11}  {'req/s':>8}  {'p50 ms':>8}  {'p99 ms':>8}  {'padding eff':>11}  errors")
    rows = {}
    for c in levels:
        before = scrape_tokens(base_url)
        row = run_wrk(url, c, seconds, script)
        row["padding_efficiency"] = padding_efficiency(before, scrape_tokens(base_url))
        rows[c] = row
        eff = f"{row['padding_efficiency']:.0%}" if row["padding_efficiency"] is not None else "-"
        print(f"{c:>11}  {row['rps']:>8.1f}  {row['p50']:>8.1f}  {row['p99']:>8.1f}  {eff:>11}  {row['errors']}")
    return rows


def start(name: str, model_dir: str, task: str | None):
    flags = SERVERS[name][1]
    task_flags = ("--task", task) if task else ()
    if flags is None:
        return served_runtime(model_dir, *task_flags, timeout=300)
    # The server's own thread rule (all usable CPUs), not the one-thread default of test servers.
    return served(model_dir, *task_flags, *flags, timeout=600, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")})


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def print_summary(results: dict, levels: list[int], ceiling: dict | None) -> dict:
    print("\n== summary: req/s (one text per request)")
    print(f"{'server':<52}" + "".join(f"{'c=' + str(c):>9}" for c in levels) + f"{'p50 c=1':>10}")
    for name, rows in results.items():
        print(f"{SERVERS[name][0]:<52}" + "".join(f"{rows[c]['rps']:>9.1f}" for c in levels)
              + f"{rows[levels[0]]['p50']:>9.1f}ms")
    summary = {}
    reference = results.get("kserve-runtime")
    for name, rows in results.items():
        if name == "kserve-runtime":
            continue
        line = [f"{name}:"]
        for c in (8, 32):
            if reference and c in rows and c in reference:
                summary[f"{name}_over_kserve_c{c}"] = ratio(rows[c]["rps"], reference[c]["rps"])
                line.append(f"/ KServe at c={c} {summary[f'{name}_over_kserve_c{c}']}")
        if reference and 1 in rows and 1 in reference:
            summary[f"{name}_p50_c1_over_kserve"] = ratio(rows[1]["p50"], reference[1]["p50"])
            line.append(f"p50 c=1 / KServe {summary[f'{name}_p50_c1_over_kserve']}")
        if ceiling and 32 in rows:
            summary[f"{name}_c32_over_ceiling"] = ratio(rows[32]["rps"], ceiling["ceiling_seq_per_s"])
            line.append(f"c=32 / bare-model ceiling {summary[f'{name}_c32_over_ceiling']}")
        print("  " + "  ".join(line))
    return summary


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return re.search(r"Model name:\s+(.+)", out).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        return platform.processor() or "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--servers", default=DEFAULT_SERVERS, help=f"comma-separated, of: {', '.join(SERVERS)}")
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=int, default=10, help="per level (default 10)")
    parser.add_argument("--texts", help="one text per line, or a CoNLL file (default: CoNLL-2003 valid.txt)")
    parser.add_argument("--count", type=int, default=2000, help="different texts to cycle through (default 2000)")
    parser.add_argument("--repeated", action="store_true", help="one fixed sentence instead (for comparison only)")
    parser.add_argument("--task", help="passed to every server as --task (e.g. text_embedding: KServe's runtime "
                        "does not infer it); the ceiling is for token classification, so it is skipped then")
    parser.add_argument("--no_ceiling", action="store_true", help="skip the bare-model ceiling")
    parser.add_argument("--json", dest="json_path", help="write every figure here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        print(f"unknown server(s) {', '.join(unknown)}: choose from {', '.join(SERVERS)}", file=sys.stderr)
        return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    texts, source = ([REPEATED_TEXT], "one repeated sentence (--repeated)") if args.repeated \
        else benchmark_texts(args.texts, args.count)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; texts: {len(texts)} from {source}; "
          f"{args.seconds} s per level")
    ceiling = None
    if not args.no_ceiling and args.task in (None, "token_classification"):
        from workbench.serving.hardware import choose_threads, detect_usable_cpus

        usable = detect_usable_cpus()[0]
        ceilings = []  # at our server's default thread count and at every usable CPU: the faster one counts
        for threads in sorted({choose_threads(None, os.environ, usable).threads, usable}):
            ceilings.append(measure_ceiling(args.model_dir, texts[:640], 32, threads))
            print_ceiling(ceilings[-1])
        ceiling = {**max(ceilings, key=lambda c: c["ceiling_seq_per_s"]), "all": ceilings}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bodies.lua"
        script.write_text(lua_script([v2_body(text) for text in texts]))
        for name in names:
            with contextlib.ExitStack() as stack:
                url = stack.enter_context(start(name, args.model_dir, args.task))
                results[name] = measure_server(name, url, levels, args.seconds, script)
    summary = print_summary(results, levels, ceiling)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({
            "cpu": cpu_name(), "cpus": os.cpu_count(), "texts": len(texts), "source": source,
            "seconds_per_level": args.seconds, "ceiling": ceiling, "servers": results, "summary": summary},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
