"""A gRPC proxy that breaks one rule: a mutant of tests/conformance_meta/mutants.py (GRPC_MUTANTS) in front of
a real OIP gRPC server.

    python tests/conformance_meta/grpc_mutant_proxy.py --upstream HOST:PORT --port PORT --mutation NAME

Requests are forwarded as raw bytes; an answer is decoded into its OIP message only where the mutant has an
`answer` function, and a failed call's status goes through its `error` function. The proxy itself has no
receive limit, so a message over the upstream's limit reaches the upstream and its RESOURCE_EXHAUSTED comes
back through the mutant. `--mutation none` is the transparent proxy (the baseline). In a test it runs in
process (`GrpcMutantProxy`); the mutation score starts it as a subprocess (its suite runs are forked, and
grpc does not survive a fork).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from conformance.grpc_client import METHODS, SERVICE, messages  # noqa: E402
from tests.conformance_meta.mutants import GRPC_BY_NAME, GrpcMutant  # noqa: E402

UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


class GrpcMutantProxy:
    """Serves SERVICE on 127.0.0.1:`port` (a free one when 0), forwarding to `upstream` through `mutant`."""

    def __init__(self, upstream: str, mutant: GrpcMutant | None, port: int = 0):
        self.mutant = mutant
        self.channel = grpc.insecure_channel(upstream, options=UNLIMITED)
        handlers = {rpc: grpc.unary_unary_rpc_method_handler(self._forwarder(rpc)) for rpc in METHODS}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=UNLIMITED)
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def _forwarder(self, rpc: str):
        call = self.channel.unary_unary(f"/{SERVICE}/{rpc}")  # bytes in, bytes out
        response_type = getattr(messages(), METHODS[rpc][1])
        answer_fn = self.mutant.answer if self.mutant else None
        error_fn = self.mutant.error if self.mutant else None

        def forward(request: bytes, context):
            try:
                answer = call(request, timeout=60)
            except grpc.RpcError as exc:
                code, details = exc.code().name, exc.details()
                if error_fn is not None:
                    code, details = error_fn(rpc, code, details)
                context.abort(grpc.StatusCode[code], details)
            if answer_fn is None:
                return answer
            response = response_type.FromString(answer)
            status = answer_fn(rpc, response)
            if status is not None:
                context.abort(grpc.StatusCode[status[0]], status[1])
            return response.SerializeToString()

        return forward

    def close(self) -> None:
        self.server.stop(None)
        self.channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the real gRPC server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mutation", required=True, choices=["none", *sorted(GRPC_BY_NAME)])
    args = parser.parse_args(argv)
    proxy = GrpcMutantProxy(args.upstream, GRPC_BY_NAME.get(args.mutation), args.port)
    print(f"gRPC mutant proxy {args.mutation} on {proxy.address} -> {args.upstream}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        proxy.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
