"""One benchmark run: every concurrency level against one endpoint, gathered into a report dict."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Callable, Sequence

from workbench.bench.load import Target, run_level
from workbench.bench.workload import build_payloads, count_words, load_texts, tokenizer_counter

WORDS = "words and punctuation (counted client side)"


def token_totals(metrics_text: str) -> tuple[float, float] | None:
    """(real, computed) token counters from a workbench server's /metrics text; None when absent."""
    found: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("workbench_real_tokens_total", "workbench_computed_tokens_total"):
            found[name] = float(value)
    if len(found) < 2:
        return None
    return found["workbench_real_tokens_total"], found["workbench_computed_tokens_total"]


def scrape_tokens(base_url: str, host_header: str | None = None) -> tuple[float, float] | None:
    """The server's token counters, when it exports ours (other servers: None)."""
    import httpx

    try:
        response = httpx.get(base_url.rstrip("/") + "/metrics", timeout=5.0,
                             headers={"Host": host_header} if host_header else None)
    except httpx.HTTPError:
        return None
    return token_totals(response.text) if response.status_code == 200 else None


def padding_efficiency(before: tuple[float, float] | None, after: tuple[float, float] | None) -> float | None:
    """Real / computed tokens of what ran between two scrapes (warm-up included)."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 4)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def metrics_base(endpoint: str, protocol: str, metrics_url: str | None) -> str | None:
    """Whose /metrics to scrape: `metrics_url` when given, else the REST endpoint itself; a gRPC port
    has no /metrics, so grpc scrapes nothing unless told where the server's REST port is."""
    if metrics_url:
        return metrics_url
    return None if protocol == "grpc" else endpoint


def measure(endpoint: str, model_name: str, protocol: str, concurrencies: Sequence[int], *,
            requests: int | None = None, duration_s: float | None = None, texts_file: str | Path | None = None,
            batch: int = 1, warmup: int = 0, host_header: str | None = None, tokenizer_dir: str | Path | None = None,
            timeout_s: float = 60.0, progress: bool = True, raw: bool = False, metrics_url: str | None = None,
            on_start: Callable[[dict], None] | None = None,
            on_level: Callable[[dict], None] | None = None) -> dict:
    """Measure `endpoint` at each concurrency in turn; return the report (see docs/benchmarks.md).
    For protocol grpc, `endpoint` is HOST:PORT and `raw` sends `raw_input_contents` instead of typed contents."""
    texts = load_texts(texts_file)
    if tokenizer_dir is not None:
        count_tokens, token_count = tokenizer_counter(tokenizer_dir), f"sub-word tokens (tokenizer {tokenizer_dir})"
    else:
        count_tokens, token_count = count_words, WORDS
    target = Target.for_endpoint(endpoint, model_name, protocol, host_header, timeout_s)
    payloads = build_payloads(texts, protocol, batch, count_tokens, model_name=model_name, raw=raw)
    scraped = metrics_base(endpoint, protocol, metrics_url)
    report = {
        "endpoint": endpoint,
        "url": target.url,
        "model_name": model_name,
        "protocol": protocol,
        "contents": ("raw" if raw else "typed") if protocol == "grpc" else None,
        "metrics_url": scraped,
        "batch": batch,
        "requests": requests,
        "duration_s": duration_s,
        "warmup": warmup,
        "texts": {"source": str(texts_file) if texts_file else "built-in sample", "count": len(texts)},
        "token_count": token_count,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "client_cores": os.cpu_count(),
        "levels": [],
    }
    if on_start is not None:
        on_start(report)
    for concurrency in concurrencies:
        before = scrape_tokens(scraped, host_header) if scraped else None
        level = run_level(target, payloads, concurrency, requests=requests, duration_s=duration_s,
                          warmup=warmup, progress=progress)
        after = scrape_tokens(scraped, host_header) if scraped else None
        level["padding_efficiency"] = padding_efficiency(before, after)
        report["levels"].append(level)
        if on_level is not None:
            on_level(level)
    return report
