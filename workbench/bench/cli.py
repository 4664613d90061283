"""`workbench bench`: throughput and latency of any KServe V1 / V2 (REST or gRPC) endpoint, level by level.

    workbench bench --endpoint http://127.0.0.1:8080 --model-name model --protocol v2 \
        --concurrency 1,8,32,64 --requests 500 --batch 1 --json bench.json --plot bench.png
    workbench bench --endpoint 127.0.0.1:8081 --model-name model --protocol grpc \
        --metrics-url http://127.0.0.1:8080 --concurrency 1,8,32,64 --requests 500

Exit status: 0 when every request succeeded, 1 when some failed (they are counted in the table),
2 for bad options.
"""

from __future__ import annotations

import argparse
import sys

from workbench.bench.workload import PROTOCOLS


def concurrency_list(value: str) -> list[int]:
    try:
        levels = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not levels or any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError(f"concurrency levels must be integers >= 1, got {value!r}")
    return levels


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True,
                        help="base URL, e.g. http://127.0.0.1:8080; for --protocol grpc the gRPC HOST:PORT, "
                             "e.g. 127.0.0.1:8081")
    parser.add_argument("--model-name", "--model_name", dest="model_name", required=True,
                        help="model name (in the URL, or the gRPC request's model_name)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="v2",
                        help="V1 :predict, V2 /infer, grpc: V2 ModelInfer over gRPC, or openai: POST "
                             "/openai/v1/embeddings (text embeddings) (default v2)")
    parser.add_argument("--raw", action="store_true",
                        help="grpc only: send the texts as raw_input_contents instead of typed bytes_contents")
    parser.add_argument("--metrics-url", help="base URL whose /metrics gives the padding efficiency (default: "
                        "--endpoint for v1/v2; none for grpc, e.g. http://127.0.0.1:8080 for our server)")
    parser.add_argument("--concurrency", type=concurrency_list, default=[1, 8, 32, 64],
                        help="comma-separated concurrency levels, run one after another (default 1,8,32,64)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--requests", type=positive_int, help="requests per level (default 200)")
    bound.add_argument("--duration", type=float, help="seconds per level, instead of --requests")
    parser.add_argument("--texts", help="file with one text per line, or a CoNLL file (one text per sentence, e.g. "
                        "CoNLL-2003 valid.txt) (default: built-in CoNLL-style sample)")
    parser.add_argument("--batch", type=positive_int, default=1, help="texts per request (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured requests before each level (default 10)")
    parser.add_argument("--host-header", help="Host header to send, e.g. a KServe InferenceService's host name")
    parser.add_argument("--tokenizer", help="tokenizer directory: count real sub-word tokens instead of words")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds (default 60)")
    parser.add_argument("--json", dest="json_path", help="write the full report as JSON here")
    parser.add_argument("--plot", dest="plot_path", help="write a PNG of throughput and p99 latency here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        print("workbench bench: --duration must be positive", file=sys.stderr)
        return 2
    if args.warmup < 0:
        print("workbench bench: --warmup cannot be negative", file=sys.stderr)
        return 2
    if args.raw and args.protocol != "grpc":
        print("workbench bench: --raw needs --protocol grpc (raw_input_contents is a gRPC form)", file=sys.stderr)
        return 2
    requests = args.requests if args.requests is not None or args.duration is not None else 200

    from workbench.bench.measure import measure
    from workbench.bench.report import (format_header, format_level, format_notes, format_table_head, write_json,
                                        write_plot)

    def started(report: dict) -> None:
        print(format_header(report) + "\n\n" + format_table_head(), flush=True)

    def finished(level: dict) -> None:
        print(format_level(level), flush=True)

    try:
        report = measure(args.endpoint, args.model_name, args.protocol, args.concurrency, requests=requests,
                         duration_s=args.duration, texts_file=args.texts, batch=args.batch, warmup=args.warmup,
                         host_header=args.host_header, tokenizer_dir=args.tokenizer, timeout_s=args.timeout,
                         progress=not args.no_progress, raw=args.raw, metrics_url=args.metrics_url,
                         on_start=started, on_level=finished)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"workbench bench: {exc}", file=sys.stderr)
        return 2
    notes = format_notes(report)
    if notes:
        print("\n" + notes)
    if args.json_path:
        print(f"\nJSON report: {write_json(report, args.json_path)}")
    if args.plot_path:
        print(f"plot: {write_plot(report, args.plot_path)}")
    failed = sum(level["error_count"] for level in report["levels"])
    if failed:
        print(f"\n{failed} request(s) failed; see the errors column.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
