"""The serving benchmark with `wrk` as the load generator: our predictor (batching, and
`--max_batch_size 1`) against KServe's own model server, same model, same request, one run.

    python benchmarks/serve_wrk.py --model_dir outputs/ner-minilm [--concurrency 1,8,32,64] [--seconds 8]

Why a second script: on a 2-core machine a Python load generator (`workbench bench`, httpx) needs a
core of its own at ~90 requests/s and becomes the bottleneck; `wrk` (C, `apt-get install wrk`) uses
almost none, so it measures the servers. Each request is one V2 BYTES text (a CoNLL-style sentence).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from workbench.testsupport.servers import free_port, served, served_command

BODY = ('{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": '
        '["Peter Blackburn of the European Commission said on Thursday it disagreed with German advice"]}]}')


def wrk(url: str, connections: int, seconds: int, script: Path) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), "--latency", url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": ms("50%"),
            "p99": ms("99%"), "errors": int(errors.group(1)) if errors else 0}


def measure(name: str, base_url: str, levels: list[int], seconds: int, script: Path) -> dict:
    url = f"{base_url}/v2/models/model/infer"
    wrk(url, 4, 2, script)  # warm-up
    rows = {}
    print(f"\n== {name}   (load average {os.getloadavg()[0]:.2f})")
    print(f"{'concurrency':>11}  {'req/s':>8}  {'p50 ms':>8}  {'p99 ms':>8}  errors")
    for c in levels:
        rows[c] = wrk(url, c, seconds, script)
        r = rows[c]
        print(f"{c:>11}  {r['rps']:>8.1f}  {r['p50']:>8.1f}  {r['p99']:>8.1f}  {r['errors']}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--concurrency", default="1,8,32,64")
    parser.add_argument("--seconds", type=int, default=8, help="per level (default 8)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                          f"wrk.body = '{BODY}'\n")
        results = {}
        with served(args.model_dir) as url:
            results["ours"] = measure("ours, batching (default flags)", url, levels, args.seconds, script)
        with served(args.model_dir, "--max_batch_size", "1") as url:
            results["unbatched"] = measure("ours, --max_batch_size 1", url, levels, args.seconds, script)
        port = free_port()
        command = [sys.executable, "-m", "workbench.testsupport.kserve_modelserver", "--model_dir", args.model_dir,
                   "--model_name", "model", "--http_port", str(port)]
        with served_command(command, port, timeout=180) as url:
            results["kserve"] = measure("KServe ModelServer (HF runtime stand-in)", url, levels, args.seconds, script)
    ours, kserve = results["ours"], results["kserve"]
    top = max(levels)
    mid = 32 if 32 in levels else top
    print(f"\nours / KServe throughput at concurrency {mid}: {ours[mid]['rps'] / kserve[mid]['rps']:.2f}x  (target >= 3x)")
    if 1 in levels:
        print(f"ours / KServe p50 latency at concurrency 1: {ours[1]['p50'] / kserve[1]['p50']:.2f}x  (target <= 1.2x)")
    print(f"ours batched / unbatched at concurrency {mid}: {ours[mid]['rps'] / results['unbatched'][mid]['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
