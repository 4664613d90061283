"""`workbench serve`: parse KServe-style arguments, start the HTTP and gRPC servers, load the model.

The HTTP server starts first and answers health checks (ready: 503) while the model loads, as a
Kubernetes readiness probe expects; a model that fails to load ends the process with its reason.
gRPC (`--grpc_port`, default 8081; off with `--disable_grpc`, `--enable_grpc false` or `--grpc_port 0`)
runs on the same event loop and answers from the same model and batching queue (grpc_service.py).
"""

from __future__ import annotations

import logging
import os
import sys

from workbench.serving.args import parse_serve_args

log = logging.getLogger("workbench.serve")


def set_parallelism(config):
    """Model workers, and torch intra-op threads per worker, from --model_workers, --num_threads,
    OMP_NUM_THREADS, the backend and the usable CPUs (rules in hardware.choose_parallelism). Returns the
    config with both filled in."""
    import torch

    from workbench.serving.hardware import choose_parallelism, detect_usable_cpus

    usable, how = detect_usable_cpus()
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    choice = choose_parallelism(config.model_workers, config.num_threads, os.environ, usable, cuda=cuda,
                                gil_free=config.backend == "onnxruntime")
    if choice.warning:
        log.warning("%s", choice.warning)
    torch.set_num_threads(choice.threads)
    # A tokenizer pool, when TOKENIZERS_PARALLELISM turns it on, is sized to the same CPUs.
    os.environ.setdefault("RAYON_NUM_THREADS", str(usable))
    log.info("model workers: %d x %d intra-op thread(s) (%s; %d usable CPU(s): %s)", choice.workers,
             choice.threads, choice.reason, usable, how)
    return config.replace(model_workers=choice.workers, num_threads=choice.threads)


def _with_grpc(uvicorn, state):
    """uvicorn's Server, serving gRPC on the same event loop: started before HTTP (a port that cannot
    be bound ends the process at once), stopped before the batching queue stops."""
    from workbench.serving import grpc_service

    class ServerWithGrpc(uvicorn.Server):
        async def serve(self, sockets=None) -> None:
            grpc_server = await grpc_service.start_server(state)

            async def stop_grpc() -> None:
                await grpc_server.stop(grace=5)

            state.on_shutdown.append(stop_grpc)
            try:
                await super().serve(sockets)
            finally:
                await grpc_server.stop(grace=None)

    return ServerWithGrpc


def main(argv: list[str] | None = None) -> int:
    config = parse_serve_args(argv)
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Tokenizer parallelism stays off unless set: large requests are tokenized on worker threads already,
    # and a second pool would compete with the intra-op threads for the same CPUs.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if config.model_id is None and config.model_dir:
        from workbench.serving.model_dir import model_dir_problem

        problem = model_dir_problem(config.model_dir)
        if problem is not None:
            print(f"workbench serve: {problem}", file=sys.stderr)
            return 2

    config = set_parallelism(config)

    import uvicorn

    from workbench.serving.app import ServerState, build_app

    state = ServerState(config)
    holder: dict[str, uvicorn.Server] = {}

    def stop_server() -> None:  # the model cannot load: stop, and exit with the reason below
        holder["server"].should_exit = True

    app = build_app(state, on_load_failure=stop_server)
    uvicorn_config = uvicorn.Config(app, host=config.host, port=config.http_port, log_level=config.log_level,
                                    access_log=False)
    server = holder["server"] = (_with_grpc(uvicorn, state)(uvicorn_config) if config.enable_grpc
                                 else uvicorn.Server(uvicorn_config))
    if not config.enable_grpc:
        logging.getLogger("workbench.serve").info("gRPC is off (--disable_grpc, --enable_grpc false or --grpc_port 0)")
    from workbench.serving.grpc_service import GrpcBindError

    try:
        server.run()
    except GrpcBindError as exc:
        print(f"workbench serve: {exc} (pick another --grpc_port, or --disable_grpc)", file=sys.stderr)
        return 1
    if state.load_error is not None:
        print(f"workbench serve: the model failed to load: {state.load_error}", file=sys.stderr)
        return 1
    return 0
