"""`workbench serve` arguments: KServe's Hugging Face runtime flags, plus our batching limits.

The KServe spellings are kept (underscores), so an InferenceService's container args work unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from workbench.tasks import TASKS, Mode

DTYPE_CHOICES = ["auto", "native", "float32", "float", "float16", "half", "bfloat16"]
BACKEND_CHOICES = ["torch", "onnxruntime"]


@dataclass(frozen=True)
class ServeConfig:
    model_name: str = "model"
    model_dir: str | None = "/mnt/models"
    model_id: str | None = None
    task: str | None = None
    lower_case: bool = True
    add_special_tokens: bool = True
    max_length: int | None = None
    mode: Mode = Mode.DEFAULT
    return_offsets_mapping: bool = False
    dtype: str = "auto"
    device: str = "auto"
    num_threads: int | None = None
    model_workers: int | None = None  # None: the rule in hardware.choose_parallelism
    backend: str = "torch"
    quantize: str = "none"
    onnx_cache_dir: str | None = None
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    enable_grpc: bool = True  # off: --disable_grpc, --enable_grpc false or --grpc_port 0
    grpc_max_receive_message_length: int | None = None  # None: max_request_bytes
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    max_batch_delay_ms: float = 0.0
    packing: bool = True
    max_queue_size: int = 2048
    max_request_bytes: int = 16 * 1024 * 1024
    max_request_texts: int = 1024
    log_level: str = "info"

    @property
    def model_source(self) -> str:
        """What `from_pretrained` loads: the hub id when given, else the directory."""
        return self.model_id or self.model_dir or "/mnt/models"

    def replace(self, **changes) -> "ServeConfig":
        return dataclasses.replace(self, **changes)


def _true_or_false(value: str) -> bool:
    """KServe's boolean flags (`--enable_grpc false`)."""
    if value.lower() in ("true", "1", "yes", "y", "on"):
        return True
    if value.lower() in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench serve",
        description="Serve a Hugging Face encoder model over KServe V1 and the Open Inference Protocol (V2).",
    )
    model = parser.add_argument_group("model (KServe Hugging Face runtime flags)")
    model.add_argument("--model_name", default="model", help="the name in URLs (default: model)")
    model.add_argument("--model_dir", default=None, help="local model directory (default: /mnt/models)")
    model.add_argument("--model_id", default=None, help="Hugging Face Hub id (downloads; needs network)")
    model.add_argument("--task", choices=TASKS, default=None,
                       help="inferred from config.architectures when absent")
    model.add_argument("--disable_lower_case", action="store_true",
                       help="do not lowercase inputs (KServe lowercases by default, even for cased models)")
    model.add_argument("--disable_special_tokens", action="store_true",
                       help="tokenize without [CLS]/[SEP] (add_special_tokens=False)")
    model.add_argument("--max_length", "--max_model_len", dest="max_length", type=int, default=None,
                       help="truncation length (default: the model's max_position_embeddings)")
    outputs = model.add_mutually_exclusive_group()
    outputs.add_argument("--return_probabilities", action="store_true",
                         help="softmax probabilities rounded to 4 places instead of ids")
    outputs.add_argument("--return_raw_logits", "--return_logits", "--disable_postprocess",
                         dest="return_raw_logits", action="store_true",
                         help="raw logits (all three spellings accepted; KServe's runtime knows only the first)")
    model.add_argument("--return_offsets_mapping", action="store_true",
                       help="token classification: also return each token's character span")
    model.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                       help="auto: float16 on CUDA, float32 on CPU (KServe's runtime: the same answers); native: "
                            "bfloat16 where the CPU runs it natively (AMX or AVX512-BF16), else as auto. "
                            "bfloat16/float16 on a CPU that emulates them warn at start-up")
    model.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                       help="auto: CUDA when available, else CPU")
    model.add_argument("--num_threads", type=int, default=None,
                       help="torch intra-op threads of each model worker (default: $OMP_NUM_THREADS when set, "
                            "else the usable CPUs - affinity mask capped by the cgroup quota, rounded down - "
                            "shared evenly by the workers)")
    model.add_argument("--model_workers", type=int, default=None,
                       help="model workers running batches side by side, each on its own thread (default: one "
                            "per usable CPU, at most 4; one on CUDA, or when --num_threads/OMP_NUM_THREADS is set)")
    model.add_argument("--backend", choices=BACKEND_CHOICES, default="torch",
                       help="torch (default), or onnxruntime: the model exported once to ONNX and run by ONNX "
                            "Runtime (needs the onnx extra)")
    model.add_argument("--quantize", choices=["none", "int8"], default="none",
                       help="onnxruntime only: int8 = dynamic int8 quantization of the MatMul/Gemm weights")
    model.add_argument("--onnx_cache_dir", default=None,
                       help="where exported ONNX models are kept (default: $XDG_CACHE_HOME/workbench/onnx)")
    server = parser.add_argument_group("server")
    server.add_argument("--http_port", type=int, default=8080, help="REST port (default: 8080, as KServe)")
    server.add_argument("--grpc_port", type=int, default=8081,
                        help="gRPC port, inference.GRPCInferenceService of the Open Inference Protocol "
                             "(default: 8081, as KServe); 0 turns gRPC off")
    server.add_argument("--enable_grpc", type=_true_or_false, default=True, metavar="{true,false}",
                        help="KServe's switch: --enable_grpc false serves REST only")
    server.add_argument("--disable_grpc", action="store_true", help="serve REST only (= --enable_grpc false)")
    server.add_argument("--grpc_max_receive_message_length", type=int, default=None,
                        help="largest gRPC request in bytes; larger ones get RESOURCE_EXHAUSTED "
                             "(default: --max_request_bytes)")
    server.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, all interfaces)")
    server.add_argument("--log_level", default="info", choices=["debug", "info", "warning", "error"])
    batching = parser.add_argument_group("batching and limits")
    batching.add_argument("--max_batch_size", type=int, default=32,
                          help="most texts in one forward pass (1 disables batching across requests)")
    batching.add_argument("--max_batch_tokens", type=int, default=8192,
                          help="most padded tokens (texts x padded length) in one forward pass")
    batching.add_argument("--max_batch_delay_ms", type=float, default=0.0,
                          help="wait up to this long for more texts before a forward pass (default: none)")
    batching.add_argument("--disable_packing", action="store_true",
                          help="one padded row per text instead of packing a batch's texts into shared rows")
    batching.add_argument("--max_queue_size", type=int, default=2048,
                          help="texts waiting for the model before new requests get 503")
    batching.add_argument("--max_request_bytes", type=int, default=16 * 1024 * 1024,
                          help="larger request bodies get 413")
    batching.add_argument("--max_request_texts", type=int, default=1024,
                          help="requests with more texts get 400")
    return parser


def serve_flags() -> frozenset[str]:
    """Every `--flag` spelling `workbench serve` accepts (manifests check container args against them)."""
    return frozenset(option for action in build_parser()._actions for option in action.option_strings
                     if option.startswith("--") and option != "--help")


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    if args.return_raw_logits:
        mode = Mode.LOGITS
    elif args.return_probabilities:
        mode = Mode.PROBABILITIES
    else:
        mode = Mode.DEFAULT
    positive = {"max_batch_size": args.max_batch_size, "max_batch_tokens": args.max_batch_tokens,
                "max_queue_size": args.max_queue_size, "max_request_texts": args.max_request_texts}
    for name, value in positive.items():
        if value < 1:
            raise SystemExit(f"workbench serve: --{name} must be at least 1 (got {value})")
    if args.num_threads is not None and args.num_threads < 1:
        raise SystemExit(f"workbench serve: --num_threads must be at least 1 (got {args.num_threads})")
    if args.model_workers is not None and args.model_workers < 1:
        raise SystemExit(f"workbench serve: --model_workers must be at least 1 (got {args.model_workers})")
    if args.max_length is not None and args.max_length < 2:
        raise SystemExit(f"workbench serve: --max_length must be at least 2 (got {args.max_length})")
    if not 0 <= args.grpc_port <= 65535:
        raise SystemExit(f"workbench serve: --grpc_port must be a port number, or 0 for no gRPC (got {args.grpc_port})")
    if args.grpc_max_receive_message_length is not None and args.grpc_max_receive_message_length < 1:
        raise SystemExit("workbench serve: --grpc_max_receive_message_length must be at least 1 "
                         f"(got {args.grpc_max_receive_message_length})")
    if args.quantize != "none" and args.backend != "onnxruntime":
        raise SystemExit(f"workbench serve: --quantize {args.quantize} needs --backend onnxruntime")
    model_dir = args.model_dir
    if model_dir is None and args.model_id is None:
        model_dir = "/mnt/models"
    # Flags spelled like ServeConfig's fields are copied as they are; the rest are derived above.
    same_name = {f.name: getattr(args, f.name) for f in dataclasses.fields(ServeConfig) if hasattr(args, f.name)}
    return ServeConfig(**{**same_name, "model_dir": model_dir, "mode": mode,
                          "lower_case": not args.disable_lower_case,
                          "packing": not args.disable_packing,
                          "enable_grpc": args.enable_grpc and not args.disable_grpc and args.grpc_port != 0,
                          "add_special_tokens": not args.disable_special_tokens})


def parse_serve_args(argv: list[str] | None) -> ServeConfig:
    return config_from_args(build_parser().parse_args(argv))
