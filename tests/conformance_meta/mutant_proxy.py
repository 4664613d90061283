"""A deliberately wrong server: a reverse proxy in front of a real predictor that breaks its answers.

    python tests/conformance_meta/mutant_proxy.py --upstream http://127.0.0.1:PORT --port P [--mutation NAME]

The mutation can be switched at run time with `PUT /__mutation/NAME` (so one proxy serves every
mutant). The mutants themselves (what each breaks, and how) are the catalogue in
tests/conformance_meta/mutants.py; this proxy only forwards, hands each exchange to the mutant, and
(for the concurrency mutants) trades answers between requests in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conformance_meta.mutants import BY_NAME, Exchange, Mutant, is_inference  # noqa: E402

MUTATIONS = {"none": "transparent proxy (baseline)", **{name: m.breaks for name, m in BY_NAME.items()}}


def mutate(mutation: str, path: str, status: int, body: Any, method: str = "POST", request: Any = None) -> tuple[int, Any]:
    """The pure part: how one mutation changes one (status, JSON body) answer."""
    if mutation == "none":
        return status, body
    out = BY_NAME[mutation].apply(Exchange(method, path, request, "application/json", status, body))
    return out.status, out.body


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None


def build_app(upstream: str, mutation: str = "none"):
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    state: dict[str, Any] = {"mutation": mutation, "in_flight": 0, "slot": None}
    client = httpx.AsyncClient(base_url=upstream, timeout=120.0)

    async def set_mutation(request: Request):
        name = request.path_params["name"]
        if name not in MUTATIONS:
            return JSONResponse({"error": f"unknown mutation {name!r}"}, status_code=400)
        state["mutation"] = name
        state["slot"] = None
        return JSONResponse({"mutation": name})

    async def swap_with_partner(content: Any) -> Any:
        """Trade this answer with another in-flight request's answer (concurrency mutants)."""
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
        inference = is_inference(path)
        state["in_flight"] += inference
        try:
            name = state["mutation"]
            mutant: Mutant | None = BY_NAME.get(name)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            content = await request.body()
            request_json = _json(content)
            if mutant is not None and mutant.rewrite_request is not None and request_json is not None:
                rewritten = mutant.request_for(Exchange(request.method, path, request_json))
                content = json.dumps(rewritten).encode()
            query = f"?{request.url.query}" if request.url.query else ""
            try:
                answer = await client.request(request.method, path + query, content=content, headers=headers)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # The upstream closed a kept-alive connection (KServe's runtime does after some error answers)
                answer = await client.request(request.method, path + query, content=content, headers=headers)
            status, body_bytes = answer.status_code, answer.content
            media_type = answer.headers.get("content-type")
            if mutant is None:
                return Response(body_bytes, status_code=status, media_type=media_type)
            before = Exchange(request.method, path, request_json, request.headers.get("content-type", ""),
                              status, _json(body_bytes), media_type)
            after = mutant.apply(before)
            if (after.status, after.body, after.content_type) != (before.status, before.body, before.content_type):
                status, media_type = after.status, after.content_type
                body_bytes = json.dumps(after.body).encode() if after.body is not None else body_bytes
            if mutant.swap and inference and status == 200:
                body = _json(body_bytes)
                if mutant.swap == "whole" or not isinstance(body, dict):
                    body_bytes = await swap_with_partner(body_bytes)
                else:
                    own_id = body.get("id")
                    theirs = _json(await swap_with_partner(body_bytes))
                    if isinstance(theirs, dict) and "id" in theirs:
                        theirs["id"] = own_id
                    body_bytes = json.dumps(theirs).encode()
            return Response(body_bytes, status_code=status, media_type=media_type)
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
