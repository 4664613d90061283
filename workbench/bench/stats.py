"""Pure functions that turn per-request records into the figures `workbench bench` reports.

Throughput counts only successful requests, and latency percentiles are taken over successful
requests only, so a server that answers errors quickly shows errors, not speed.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence


@dataclass(frozen=True)
class RequestRecord:
    """One request as the client saw it. `error` is None on success, else a short category
    (`HTTP 503`, `gRPC INTERNAL`, `invalid response`, or an exception class name such as `ConnectError`);
    `detail` is what the server said with it (an HTTP error body, a gRPC status message), when anything."""

    latency_s: float
    texts: int
    tokens: int
    error: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default);
    None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = math.ceil(position)
    if lower == upper:
        return float(ordered[lower])
    fraction = position - lower
    return float(ordered[lower] + (ordered[upper] - ordered[lower]) * fraction)


def rate(count: float, elapsed_s: float) -> float:
    """Items per second; 0 when no time elapsed."""
    return count / elapsed_s if elapsed_s > 0 else 0.0


def error_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """Failed requests by category, most frequent first."""
    counts = Counter(record.error for record in records if record.error is not None)
    return dict(counts.most_common())


def error_details(records: Iterable[RequestRecord]) -> dict[str, str]:
    """The first detail the server gave for each error category (categories without one are left out)."""
    details: dict[str, str] = {}
    for record in records:
        if record.error is not None and record.detail and record.error not in details:
            details[record.error] = record.detail
    return details


def cpu_share(cpu_s: float | None, elapsed_s: float) -> float | None:
    """CPU seconds per wall second (1.0 = one core busy the whole time); None when not measured."""
    if cpu_s is None or elapsed_s <= 0:
        return None
    return round(cpu_s / elapsed_s, 4)


def summarize_level(concurrency: int, records: Sequence[RequestRecord], elapsed_s: float,
                    client_cpu_s: float | None = None) -> dict:
    """The figures for one concurrency level, as they appear in the JSON report. `client_cpu_s` is the
    CPU time the load generator's process spent while the level ran (see load.run_level_async)."""
    ok = [record for record in records if record.ok]
    latencies_ms = [record.latency_s * 1000.0 for record in ok]

    def ms(q: float) -> float | None:
        value = percentile(latencies_ms, q)
        return None if value is None else round(value, 3)

    return {
        "concurrency": concurrency,
        "requests": len(records),
        "ok": len(ok),
        "errors": error_counts(records),
        "error_details": error_details(records),
        "error_count": len(records) - len(ok),
        "elapsed_s": round(elapsed_s, 4),
        "requests_per_s": round(rate(len(ok), elapsed_s), 3),
        "texts_per_s": round(rate(sum(r.texts for r in ok), elapsed_s), 3),
        "tokens_per_s": round(rate(sum(r.tokens for r in ok), elapsed_s), 3),
        "client_cpu_s": None if client_cpu_s is None else round(client_cpu_s, 4),
        "client_cpu_share": cpu_share(client_cpu_s, elapsed_s),
        "latency_ms": {
            "p50": ms(50),
            "p90": ms(90),
            "p99": ms(99),
            "mean": round(sum(latencies_ms) / len(latencies_ms), 3) if latencies_ms else None,
            "max": round(max(latencies_ms), 3) if latencies_ms else None,
        },
    }
