"""A deliberately minimal V1/V2 server for testing `workbench bench` itself (not a model server).

`--mode ok` answers well-formed predictions without a model, `--mode error` answers 500 to every
predict/infer call, `--mode garbage` answers 200 with a body that is not predictions. Health routes
always answer 200, so the test harness sees it as ready. `--require-host` acts like an ingress
gateway: predictions for any other Host header get 404.

    python tests/bench/fake_server.py --port 8080 --mode error
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


def build_app(mode: str, require_host: str | None = None) -> Starlette:
    async def ready(request: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    async def predict(request: Request):
        body = await request.json()
        if require_host and request.headers.get("host") != require_host:
            # What an ingress gateway does with a request for a host it does not route.
            return JSONResponse({"error": "no route for this host"}, status_code=404)
        if mode == "error":
            return JSONResponse({"error": "this server always fails"}, status_code=500)
        if mode == "garbage":
            return PlainTextResponse("not json at all")
        if "instances" in body:
            return JSONResponse({"predictions": [0 for _ in body["instances"]]})
        texts = body["inputs"][0]["data"]
        return JSONResponse({"model_name": request.path_params["model"], "id": "x",
                             "outputs": [{"name": "output-0", "shape": [len(texts)], "datatype": "INT64",
                                          "data": [0] * len(texts)}]})

    async def v1_predict(request: Request):
        # Starlette path params cannot hold the ":predict" suffix split, so parse it here.
        name = request.path_params["name"]
        if not name.endswith(":predict"):
            return JSONResponse({"error": "not found"}, status_code=404)
        request.path_params["model"] = name[: -len(":predict")]
        return await predict(request)

    return Starlette(routes=[
        Route("/v2/health/ready", ready),
        Route("/v2/models/{model}/infer", predict, methods=["POST"]),
        Route("/v1/models/{name}", v1_predict, methods=["POST"]),
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["ok", "error", "garbage"], default="ok")
    parser.add_argument("--require-host", help="answer 404 to predictions whose Host header differs")
    args = parser.parse_args(argv)
    uvicorn.run(build_app(args.mode, args.require_host), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
