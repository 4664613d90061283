"""`workbench serve`: parse KServe-style arguments, start the HTTP server, load the model.

The HTTP server starts first and answers health checks (ready: 503) while the model loads, as a
Kubernetes readiness probe expects; a model that fails to load ends the process with its reason.
"""

from __future__ import annotations

import logging
import os
import sys

from workbench.serving.args import parse_serve_args


def main(argv: list[str] | None = None) -> int:
    config = parse_serve_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if config.model_id is None and config.model_dir:
        from workbench.serving.model_dir import model_dir_problem

        problem = model_dir_problem(config.model_dir)
        if problem is not None:
            print(f"workbench serve: {problem}", file=sys.stderr)
            return 2

    import uvicorn

    from workbench.serving.app import ServerState, build_app

    state = ServerState(config)
    holder: dict[str, uvicorn.Server] = {}

    def stop_server() -> None:  # the model cannot load: stop, and exit with the reason below
        holder["server"].should_exit = True

    app = build_app(state, on_load_failure=stop_server)
    server = holder["server"] = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.http_port, log_level=config.log_level, access_log=False))
    server.run()
    if state.load_error is not None:
        print(f"workbench serve: the model failed to load: {state.load_error}", file=sys.stderr)
        return 1
    return 0
