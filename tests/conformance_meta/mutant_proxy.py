"""A deliberately wrong server: a reverse proxy in front of a real predictor that breaks its answers.

    python tests/conformance_meta/mutant_proxy.py --upstream http://127.0.0.1:PORT --port P [--mutation NAME]

The mutation can be switched at run time with `PUT /__mutation/NAME` (so one proxy serves every
mutant). Each mutation imitates a real bug a server could have; the conformance suite must catch it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

MUTATIONS = {
    "none": "transparent proxy (baseline)",
    "wrong-shape": "V2 outputs declare one more element in the last dimension than they carry",
    "wrong-datatype": "V2 INT64 outputs are labelled BYTES",
    "swapped-labels": "every label id is shifted by one (id -> (id + 1) % 9) in V1 and V2",
    "lost-id": "V2 responses carry a fresh id instead of the request's",
    "mixed-concurrent": "responses of concurrent predict/infer requests are handed to each other",
    "error-500": "every 4xx answer becomes 500 {\"error\": \"Internal Server Error\"}",
    "ragged-rows": "V1 token rows drop their last position (padding) for every text but the first",
}
NUM_LABELS = 9


def _is_inference(path: str) -> bool:
    return path.endswith(":predict") or path.endswith("/infer")


def _shift(value: Any) -> Any:
    if isinstance(value, list):
        return [_shift(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return (value + 1) % NUM_LABELS
    return value


def mutate(mutation: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    """The pure part: how one mutation changes one (status, JSON body) answer."""
    if mutation == "error-500" and 400 <= status < 500:
        return 500, {"error": "Internal Server Error"}
    if status != 200 or not isinstance(body, dict) or not _is_inference(path):
        return status, body
    outputs = body.get("outputs") if isinstance(body.get("outputs"), list) else []
    if mutation == "wrong-shape":
        for tensor in outputs:
            tensor["shape"] = list(tensor["shape"][:-1]) + [tensor["shape"][-1] + 1]
    elif mutation == "wrong-datatype":
        for tensor in outputs:
            if tensor.get("datatype") == "INT64":
                tensor["datatype"] = "BYTES"
    elif mutation == "swapped-labels":
        if "predictions" in body:
            body["predictions"] = _shift(body["predictions"])
        for tensor in outputs:
            if tensor.get("datatype") == "INT64":
                tensor["data"] = _shift(tensor["data"])
    elif mutation == "lost-id" and "outputs" in body:
        body["id"] = "not-the-request-id"
    elif mutation == "ragged-rows" and isinstance(body.get("predictions"), list):
        rows = body["predictions"]
        for row in rows[1:]:
            if isinstance(row, list) and row and isinstance(row[0], list) and len(row[0]) > 1:
                row[0] = row[0][:-1]
    return status, body


def build_app(upstream: str, mutation: str = "none"):
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state: dict[str, Any] = {"mutation": mutation, "in_flight": 0, "slot": None}
    client = httpx.AsyncClient(base_url=upstream, timeout=60.0)

    async def set_mutation(request: Request):
        name = request.path_params["name"]
        if name not in MUTATIONS:
            return JSONResponse({"error": f"unknown mutation {name!r}"}, status_code=400)
        state["mutation"] = name
        return JSONResponse({"mutation": name})

    async def swap_with_partner(content: bytes) -> bytes:
        """mixed-concurrent: trade this body with another in-flight request's body."""
        slot = state["slot"]
        if slot is not None and not slot[1].done():
            state["slot"] = None
            slot[1].set_result(content)
            return slot[0]
        if state["in_flight"] <= 1:
            return content
        future = asyncio.get_running_loop().create_future()
        state["slot"] = (content, future)
        try:
            return await asyncio.wait_for(future, timeout=1.0)
        except asyncio.TimeoutError:
            if state["slot"] is not None and state["slot"][1] is future:
                state["slot"] = None
            return content

    async def forward(request: Request):
        path = request.url.path
        inference = _is_inference(path)
        state["in_flight"] += inference
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            upstream_response = await client.request(request.method, path + (f"?{request.url.query}" if request.url.query else ""),
                                                     content=await request.body(), headers=headers)
            status, content = upstream_response.status_code, upstream_response.content
            media_type = upstream_response.headers.get("content-type")
            mutation = state["mutation"]
            if mutation != "none":
                try:
                    body = json.loads(content) if content else None
                except ValueError:
                    body = None
                if body is not None or mutation == "error-500":
                    new_status, new_body = mutate(mutation, path, status, body)
                    if new_status != status or new_body is not None:
                        status, content = new_status, json.dumps(new_body).encode()
                        media_type = "application/json"
                if mutation == "mixed-concurrent" and inference and status == 200:
                    content = await swap_with_partner(content)
            return Response(content, status_code=status, media_type=media_type)
        finally:
            state["in_flight"] -= inference

    routes = [Route("/__mutation/{name}", set_mutation, methods=["PUT"]),
              Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "DELETE"])]
    return Starlette(routes=routes)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mutation", default="none", choices=sorted(MUTATIONS))
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.upstream, args.mutation), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
