"""Prometheus metrics for `/metrics`: requests by route and status, latencies, batches, queue depth, and
the padding efficiency (real tokens / computed tokens) of the forward passes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768)


def padding_efficiency(real_tokens: float, computed_tokens: float) -> float:
    """Real tokens / computed tokens (1.0 before any batch)."""
    return real_tokens / computed_tokens if computed_tokens else 1.0


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.totals = [0, 0]  # real, computed tokens since start
        self.requests = Counter("workbench_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("workbench_request_latency_seconds", "request latency by route", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("workbench_batch_texts", "texts per forward pass",
                                    buckets=SIZE_BUCKETS, registry=self.registry)
        self.batch_tokens = Histogram("workbench_batch_padded_tokens", "padded tokens per forward pass",
                                      buckets=TOKEN_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("workbench_batch_seconds", "forward pass time",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.real_tokens = Counter("workbench_real_tokens", "the texts' own tokens run through the model",
                                   registry=self.registry)
        self.computed_tokens = Counter("workbench_computed_tokens", "tokens the model computed, padding included",
                                       registry=self.registry)
        self.padding_efficiency = Gauge("workbench_padding_efficiency",
                                        "real tokens / computed tokens since start (1.0: no padding paid for)",
                                        registry=self.registry)
        self.queue_depth = Gauge("workbench_queue_depth", "texts waiting for or in the model",
                                 registry=self.registry)

    def observe_batch(self, stats) -> None:
        self.batch_size.observe(stats.texts)
        self.batch_tokens.observe(stats.padded_tokens)
        self.batch_seconds.observe(stats.seconds)
        self.real_tokens.inc(stats.real_tokens)
        self.computed_tokens.inc(stats.padded_tokens)
        self.totals[0] += stats.real_tokens
        self.totals[1] += stats.padded_tokens
        self.padding_efficiency.set(padding_efficiency(*self.totals))

    def render(self) -> bytes:
        return generate_latest(self.registry)
