"""One benchmark run: every concurrency level against one endpoint, gathered into a report dict."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Callable, Sequence

from workbench.bench.load import Target, run_level
from workbench.bench.workload import build_payloads, count_words, load_texts, tokenizer_counter

WORDS = "words and punctuation (counted client side)"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def measure(endpoint: str, model_name: str, protocol: str, concurrencies: Sequence[int], *,
            requests: int | None = None, duration_s: float | None = None, texts_file: str | Path | None = None,
            batch: int = 1, warmup: int = 0, host_header: str | None = None, tokenizer_dir: str | Path | None = None,
            timeout_s: float = 60.0, progress: bool = True,
            on_start: Callable[[dict], None] | None = None,
            on_level: Callable[[dict], None] | None = None) -> dict:
    """Measure `endpoint` at each concurrency in turn; return the report (see docs/benchmarks.md)."""
    texts = load_texts(texts_file)
    if tokenizer_dir is not None:
        count_tokens, token_count = tokenizer_counter(tokenizer_dir), f"sub-word tokens (tokenizer {tokenizer_dir})"
    else:
        count_tokens, token_count = count_words, WORDS
    payloads = build_payloads(texts, protocol, batch, count_tokens)
    target = Target.for_endpoint(endpoint, model_name, protocol, host_header, timeout_s)
    report = {
        "endpoint": endpoint,
        "url": target.url,
        "model_name": model_name,
        "protocol": protocol,
        "batch": batch,
        "requests": requests,
        "duration_s": duration_s,
        "warmup": warmup,
        "texts": {"source": str(texts_file) if texts_file else "built-in sample", "count": len(texts)},
        "token_count": token_count,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load_average(),
        "levels": [],
    }
    if on_start is not None:
        on_start(report)
    for concurrency in concurrencies:
        level = run_level(target, payloads, concurrency, requests=requests, duration_s=duration_s,
                          warmup=warmup, progress=progress)
        report["levels"].append(level)
        if on_level is not None:
            on_level(level)
    return report
