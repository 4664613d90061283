"""The load generator: a fixed number of async workers sharing one client (an HTTP client for v1/v2,
one `grpc.aio` channel for grpc), each sending its next request as soon as its previous one is
answered (a closed loop), for a number of requests or for a duration.

Every answer is checked lightly (2xx, JSON, with V1 `predictions` or V2 `outputs`; over gRPC status OK
and a `ModelInferResponse` with outputs) so that a broken server shows up as errors rather than as fast
answers. A failed request is counted by category (`HTTP 500`, `gRPC INTERNAL`, `ConnectError`) with the
first message the server gave for it; it never stops the run.

The client is one process and one event loop; requests are serialised before the level starts. The CPU
time that process spends during each measured level (`time.process_time()`, every thread, grpc's C
threads included) is reported beside the wall time, so a run shows whether the client had a core to
spare (see docs/benchmarks.md).
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
DETAIL_CHARS = 300  # how much of a server's error message a record keeps


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
    if protocol == "openai" and isinstance(body.get("data"), list) and body["data"]:
        return None
    return INVALID


def grpc_answer_error(content: bytes) -> str | None:
    """None when a ModelInfer answer is a `ModelInferResponse` with at least one output, else INVALID."""
    from google.protobuf.message import DecodeError

    from workbench.serving.grpc_service import messages

    try:
        response = messages().ModelInferResponse.FromString(content)
    except DecodeError:
        return INVALID
    return None if len(response.outputs) else INVALID


def grpc_address(endpoint: str) -> str:
    """HOST:PORT from `HOST:PORT` or `grpc://HOST:PORT` (ValueError for an http(s) URL or no port)."""
    address = endpoint.strip()
    if address.startswith("grpc://"):
        address = address[len("grpc://"):]
    address = address.rstrip("/")
    if "://" in address or "/" in address:
        raise ValueError(f"--protocol grpc takes --endpoint HOST:PORT (the gRPC port, e.g. 127.0.0.1:8081), "
                         f"not {endpoint!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--protocol grpc takes --endpoint HOST:PORT, e.g. 127.0.0.1:8081; got {endpoint!r}")
    return address


def _detail(text: str) -> str | None:
    text = text.strip()
    return text[:DETAIL_CHARS] if text else None


@dataclass(frozen=True)
class Target:
    """Where and how to send: `url` is the full predict/infer URL (v1, v2) or the gRPC HOST:PORT (grpc)."""

    url: str
    protocol: str
    host_header: str | None = None
    timeout_s: float = 60.0

    @classmethod
    def for_endpoint(cls, endpoint: str, model_name: str, protocol: str, host_header: str | None = None,
                     timeout_s: float = 60.0) -> "Target":
        if protocol == "grpc":
            return cls(grpc_address(endpoint), protocol, host_header, timeout_s)
        return cls(endpoint.rstrip("/") + request_path(protocol, model_name), protocol, host_header, timeout_s)

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.host_header:
            headers["host"] = self.host_header
        return headers


class HttpSender:
    """POSTs payloads to a REST predict/infer URL over one httpx client with `concurrency` connections."""

    def __init__(self, target: Target, concurrency: int):
        self.target = target
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(limits=limits, timeout=target.timeout_s, headers=target.headers())

    async def send(self, payload: Payload) -> RequestRecord:
        started = time.perf_counter()
        detail = None
        try:
            response = await self.client.post(self.target.url, content=payload.body)
            error = answer_error(self.target.protocol, response.status_code, response.content)
            if error is not None:
                detail = _detail(response.text)
        except (httpx.HTTPError, OSError) as exc:
            error, detail = type(exc).__name__, _detail(str(exc))
        return RequestRecord(time.perf_counter() - started, payload.texts, payload.tokens, error, detail)

    async def close(self) -> None:
        await self.client.aclose()


class GrpcSender:
    """Calls `inference.GRPCInferenceService/ModelInfer` with pre-serialised requests over one `grpc.aio`
    channel (HTTP/2 multiplexes the concurrent calls, as tritonclient.grpc does). `--host-header` becomes the
    channel's authority, which is what an ingress gateway routes gRPC by."""

    def __init__(self, target: Target, concurrency: int):
        import grpc

        from workbench.serving.grpc_service import SERVICE

        self.target = target
        self.rpc_error = grpc.aio.AioRpcError
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        if target.host_header:
            options.append(("grpc.default_authority", target.host_header))
        self.channel = grpc.aio.insecure_channel(target.url, options=options)
        # No serializers: the payload is already a serialised ModelInferRequest; the answer comes back as bytes.
        self.infer = self.channel.unary_unary(f"/{SERVICE}/ModelInfer")

    async def send(self, payload: Payload) -> RequestRecord:
        started = time.perf_counter()
        detail = None
        try:
            answer = await self.infer(payload.body, timeout=self.target.timeout_s)
            error = grpc_answer_error(answer)
        except self.rpc_error as exc:
            error, detail = f"gRPC {exc.code().name}", _detail(exc.details() or "")
        return RequestRecord(time.perf_counter() - started, payload.texts, payload.tokens, error, detail)

    async def close(self) -> None:
        await self.channel.close()


def open_sender(target: Target, concurrency: int) -> HttpSender | GrpcSender:
    return GrpcSender(target, concurrency) if target.protocol == "grpc" else HttpSender(target, concurrency)


async def run_level_async(target: Target, payloads: Sequence[Payload], concurrency: int, *,
                          requests: int | None = None, duration_s: float | None = None, warmup: int = 0,
                          on_record: Callable[[RequestRecord], None] | None = None
                          ) -> tuple[list[RequestRecord], float, float]:
    """Send requests with `concurrency` workers; return the records, the measured wall time and the CPU
    time this process spent meanwhile.

    Exactly one of `requests` (total count) or `duration_s` bounds the run. `warmup` requests are
    sent first with the same concurrency and left out of the records (and of both times).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if (requests is None) == (duration_s is None):
        raise ValueError("give exactly one of requests or duration_s")
    if not payloads:
        raise ValueError("no payloads to send")
    sender = open_sender(target, concurrency)
    try:
        next_index = 0

        async def worker(stop: Callable[[], bool], sink: list[RequestRecord] | None) -> None:
            nonlocal next_index
            while not stop():
                index = next_index
                next_index += 1
                record = await sender.send(payloads[index % len(payloads)])
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
        started, cpu_started = time.perf_counter(), time.process_time()
        if requests is not None:
            last = first + requests
            stop = lambda: next_index >= last  # noqa: E731
        else:
            deadline = started + float(duration_s)
            stop = lambda: time.perf_counter() >= deadline  # noqa: E731
        await asyncio.gather(*(worker(stop, records) for _ in range(concurrency)))
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await sender.close()
    return records, elapsed, cpu_s


def run_level(target: Target, payloads: Sequence[Payload], concurrency: int, *, requests: int | None = None,
              duration_s: float | None = None, warmup: int = 0, progress: bool = True) -> dict:
    """Run one concurrency level and return its summary (see `stats.summarize_level`)."""
    from tqdm import tqdm

    bar = tqdm(total=requests, desc=f"concurrency {concurrency:>3}", unit="req", leave=False,
               disable=not progress, dynamic_ncols=True)

    def tick(record: RequestRecord) -> None:
        bar.update(1)

    try:
        records, elapsed, cpu_s = asyncio.run(run_level_async(target, payloads, concurrency, requests=requests,
                                                              duration_s=duration_s, warmup=warmup,
                                                              on_record=tick))
    finally:
        bar.close()
    return summarize_level(concurrency, records, elapsed, client_cpu_s=cpu_s)
