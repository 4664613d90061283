"""The load generator: a fixed number of async workers sharing one HTTP client, each sending its
next request as soon as its previous one is answered (a closed loop), for a number of requests
or for a duration.

Every answer is checked lightly (2xx, JSON, with V1 `predictions` or V2 `outputs`) so that a
broken server shows up as errors rather than as fast answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import httpx

from workbench.bench.stats import RequestRecord, summarize_level
from workbench.bench.workload import Payload, request_path

INVALID = "invalid response"


def answer_error(protocol: str, status: int, content: bytes) -> str | None:
    """None when the answer looks like predictions for `protocol`, else the error category."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    try:
        body = json.loads(content)
    except ValueError:
        return INVALID
    if not isinstance(body, dict):
        return INVALID
    if protocol == "v1" and isinstance(body.get("predictions"), list):
        return None
    if protocol == "v2" and isinstance(body.get("outputs"), list) and body["outputs"]:
        return None
    return INVALID


@dataclass(frozen=True)
class Target:
    """Where and how to send: `url` is the full predict/infer URL."""

    url: str
    protocol: str
    host_header: str | None = None
    timeout_s: float = 60.0

    @classmethod
    def for_endpoint(cls, endpoint: str, model_name: str, protocol: str, host_header: str | None = None,
                     timeout_s: float = 60.0) -> "Target":
        return cls(endpoint.rstrip("/") + request_path(protocol, model_name), protocol, host_header, timeout_s)

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.host_header:
            headers["host"] = self.host_header
        return headers


async def _send(client: httpx.AsyncClient, target: Target, payload: Payload) -> RequestRecord:
    started = time.perf_counter()
    try:
        response = await client.post(target.url, content=payload.body)
        error = answer_error(target.protocol, response.status_code, response.content)
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    except OSError as exc:
        error = type(exc).__name__
    return RequestRecord(time.perf_counter() - started, payload.texts, payload.tokens, error)


async def run_level_async(target: Target, payloads: Sequence[Payload], concurrency: int, *,
                          requests: int | None = None, duration_s: float | None = None, warmup: int = 0,
                          on_record: Callable[[RequestRecord], None] | None = None
                          ) -> tuple[list[RequestRecord], float]:
    """Send requests with `concurrency` workers; return the records and the measured wall time.

    Exactly one of `requests` (total count) or `duration_s` bounds the run. `warmup` requests are
    sent first with the same concurrency and left out of the records.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if (requests is None) == (duration_s is None):
        raise ValueError("give exactly one of requests or duration_s")
    if not payloads:
        raise ValueError("no payloads to send")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=target.timeout_s, headers=target.headers()) as client:
        next_index = 0

        async def worker(stop: Callable[[], bool], sink: list[RequestRecord] | None) -> None:
            nonlocal next_index
            while not stop():
                index = next_index
                next_index += 1
                record = await _send(client, target, payloads[index % len(payloads)])
                if sink is not None:
                    sink.append(record)
                    if on_record is not None:
                        on_record(record)

        if warmup > 0:
            end_warmup = warmup
            await asyncio.gather(*(worker(lambda: next_index >= end_warmup, None)
                                   for _ in range(min(concurrency, warmup))))
        records: list[RequestRecord] = []
        first = next_index
        started = time.perf_counter()
        if requests is not None:
            last = first + requests
            stop = lambda: next_index >= last  # noqa: E731
        else:
            deadline = started + float(duration_s)
            stop = lambda: time.perf_counter() >= deadline  # noqa: E731
        await asyncio.gather(*(worker(stop, records) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return records, elapsed


def run_level(target: Target, payloads: Sequence[Payload], concurrency: int, *, requests: int | None = None,
              duration_s: float | None = None, warmup: int = 0, progress: bool = True) -> dict:
    """Run one concurrency level and return its summary (see `stats.summarize_level`)."""
    from tqdm import tqdm

    bar = tqdm(total=requests, desc=f"concurrency {concurrency:>3}", unit="req", leave=False,
               disable=not progress, dynamic_ncols=True)

    def tick(record: RequestRecord) -> None:
        bar.update(1)

    try:
        records, elapsed = asyncio.run(run_level_async(target, payloads, concurrency, requests=requests,
                                                       duration_s=duration_s, warmup=warmup, on_record=tick))
    finally:
        bar.close()
    return summarize_level(concurrency, records, elapsed)
