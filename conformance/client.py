"""The suite's HTTP client: every request and response is recorded for the report.

`ConformanceClient` wraps one `httpx.Client` per endpoint (connection reuse, `Host` header for an
Istio ingress, timeout from `--timeout`). Each check gets a `RecordingClient` that appends an
`Exchange` per request to the check's own list, so a failing check's report entry carries the
request sent and the response received without the check doing anything.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

BODY_LIMIT = 2000
RESPONSE_HEADERS_KEPT = ("content-type", "content-length", "server", "x-request-id", "inference-header-content-length")


def truncate(text: str, limit: int = BODY_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None
    response_headers: dict[str, str]
    response_body: str
    elapsed_s: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConformanceClient:
    """One connection pool per endpoint; thread-safe (httpx.Client is)."""

    def __init__(self, base_url: str, *, host_header: str | None = None, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.host_header = host_header
        self.timeout = timeout
        headers = {"Host": host_header} if host_header else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def recording(self, exchanges: list[Exchange]) -> "RecordingClient":
        return RecordingClient(self, exchanges)


class RecordingClient:
    def __init__(self, parent: ConformanceClient, exchanges: list[Exchange]):
        self.parent = parent
        self.exchanges = exchanges
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self.parent.base_url

    def request(self, method: str, path: str, *, json_body: Any = None, content: bytes | str | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        headers = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(content, str):
            content = content.encode()
        started = time.perf_counter()
        sent_headers = dict(headers)
        if self.parent.host_header:
            sent_headers.setdefault("Host", self.parent.host_header)
        try:
            try:
                response = self.parent._client.request(method, path, content=content, headers=headers)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # The server closed a kept-alive connection (legal HTTP, e.g. after a 500): retry once.
                response = self.parent._client.request(method, path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            self._record(Exchange(method, self.base_url + path, sent_headers, truncate((content or b"").decode(errors="replace")),
                                  None, {}, "", time.perf_counter() - started, f"{type(exc).__name__}: {exc}"))
            raise
        kept = {k: v for k, v in response.headers.items() if k.lower() in RESPONSE_HEADERS_KEPT}
        self._record(Exchange(method, self.base_url + path, sent_headers,
                              truncate((content or b"").decode(errors="replace")), response.status_code, kept,
                              truncate(response.text), time.perf_counter() - started))
        return response

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)
