"""ONNX Runtime backend: export the model once to a cache, optionally int8-quantize it, run it with ORT.

`workbench serve --backend onnxruntime [--quantize int8]` uses `OnnxEncoderRunner` in place of the torch
`EncoderRunner`. Loading and tokenization are the torch runner's own (same tokenizer flags, same truncation,
same labels); what differs is the network (an ONNX Runtime session), `prepare` (padded numpy batches with
an attention mask) and `forward`. The queue, protocols and post-processing are unchanged.

Exporter: `torch.onnx.export(..., dynamo=True)`, torch's own torch.export-based exporter (the default
since torch 2.9; the TorchScript exporter warns that it is legacy). Not `optimum-onnx`: with torch 2.13
pinned, `pip install optimum-onnx` (0.1.0) resolves by downgrading transformers 5.25 to 4.57, which the
rest of the project does not run on. The exported graph has dynamic batch and sequence axes.

Quantization (`--quantize int8`): `onnxruntime.quantization.quantize_dynamic` on the MatMul and Gemm
weights only (int8 weights, one scale per output channel; activations quantized to uint8 at run time per
batch). Per channel, not per tensor: on the MiniLM NER model (1 epoch, validation F1 0.8652 in torch fp32)
per-tensor weights lost 1.0 F1 point (0.8552), per-channel 0.1 (0.8642), at the same speed
(`python benchmarks/dtype_agreement.py --model_dir DIR`, AMD EPYC Zen 4, docs/benchmarks.md). LayerNorm,
Softmax, GELU, embeddings (Gather) and the residual adds stay float32. Not static int8: static quantization
of every op, with fixed activation ranges calibrated in advance, collapsed a DistilBERT CoNLL model's F1 to
0.10 in published runs, while dynamic quantization kept 0.938 of 0.940.

Cache: `<--onnx_cache_dir or $XDG_CACHE_HOME/workbench/onnx>/<key>/model.onnx`, the key being the task,
a hash of the model directory's files, the opset and the quantization; a second start with the same model
loads the cached file instead of exporting again. Files are written to a temporary name and renamed, so two
servers starting together never read half a file.

Providers: CPUExecutionProvider; CUDAExecutionProvider first when `--device` is auto/cuda, CUDA is
available and the installed onnxruntime has that provider (onnxruntime-gpu). The CUDA path has never been
run here (no GPU on the development machine or CI).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workbench.serving.args import ServeConfig
from workbench.serving.batching import WorkItem, padded_length
from workbench.serving.runner import EncoderRunner, PreparedBatch
from workbench.tasks import TEXT_EMBEDDING

log = logging.getLogger("workbench.serve")

OPSET = 18
QUANTIZED_OPS = ["MatMul", "Gemm"]
MISSING_EXTRA = ("workbench serve: --backend onnxruntime needs ONNX Runtime, which is not installed: "
                 "pip install 'workbench[onnx]'")
FLOAT32_NAMES = ("auto", "float32", "float")


def require_onnxruntime():
    """The onnxruntime module, or SystemExit with the one-line install hint naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise SystemExit(MISSING_EXTRA) from None
    return onnxruntime


# -- the cache ------------------------------------------------------------------------------------------

def model_digest(source: str) -> str:
    """sha256 over a model directory's files (relative names and contents), or over a hub id."""
    digest = hashlib.sha256()
    root = Path(source)
    if not root.is_dir():
        digest.update(f"hub:{source}".encode())
        return digest.hexdigest()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(task: str, digest: str, opset: int, quantize: str) -> str:
    scheme = "-per-channel" if quantize == "int8" else ""  # a per-tensor file from before is not reused
    return f"{task}-{digest[:20]}-opset{opset}-{quantize}{scheme}"


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "workbench" / "onnx"


def cache_dir(config: ServeConfig, task: str, digest: str) -> Path:
    root = Path(config.onnx_cache_dir) if config.onnx_cache_dir else default_cache_root()
    return root / cache_key(task, digest, OPSET, config.quantize)


# -- export and quantization ------------------------------------------------------------------------------

class LogitsOnly(torch.nn.Module):
    """The model with named tensor inputs and one output, the logits (what the exporter traces)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits


def export_onnx(model: torch.nn.Module, input_names: list[str], path: Path, opset: int = OPSET) -> None:
    """Export `model` (eval mode) with dynamic batch and sequence axes on every input and the output."""
    wrapper = LogitsOnly(model).eval()
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in input_names or n == "attention_mask"]
    example = {name: torch.ones((2, 8), dtype=torch.long) for name in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: sequence} for name in names}
    with torch.inference_mode(False), torch.no_grad():
        program = torch.onnx.export(wrapper, (), kwargs=example, dynamo=True, input_names=names,
                                    output_names=["logits"], opset_version=opset, dynamic_shapes=dynamic,
                                    external_data=False, verbose=False)
    program.save(str(path), external_data=False)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul/Gemm weights of `source` into `target`, per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), op_types_to_quantize=QUANTIZED_OPS, weight_type=QuantType.QInt8, per_channel=True)


def write_atomically(directory: Path, name: str, produce) -> Path:
    """Run produce(temporary path) and rename the result to directory/name."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(handle)
    try:
        produce(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def ensure_onnx_model(model: torch.nn.Module, input_names: list[str], directory: Path, quantize: str) -> tuple[Path, bool]:
    """The cached ONNX file for this model, exported (and quantized) when missing.
    Returns (path, whether it came from the cache)."""
    name = "model.int8.onnx" if quantize == "int8" else "model.onnx"
    if (directory / name).is_file():
        return directory / name, True
    fp32 = directory / "model.onnx"
    if not fp32.is_file():
        log.info("exporting the model to ONNX (opset %d) in %s", OPSET, directory)
        write_atomically(directory, "model.onnx", lambda path: export_onnx(model, input_names, path))
    if quantize == "int8":
        log.info("quantizing %s to int8 (dynamic, %s weights)", fp32, "/".join(QUANTIZED_OPS))
        write_atomically(directory, name, lambda path: quantize_int8(fp32, path))
    return directory / name, False


def pick_providers(ort, device: str) -> list[str]:
    """CUDA first when asked for (or auto) and present in both torch and onnxruntime; CPU always."""
    available = ort.get_available_providers()
    wants_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise SystemExit("workbench serve: --device cuda with --backend onnxruntime needs onnxruntime-gpu "
                         "(CUDAExecutionProvider is not in this onnxruntime)")
    if wants_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]  # never run here: no GPU
    return ["CPUExecutionProvider"]


def build_session(ort, path: Path, providers: list[str], threads: int):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: on a shared CPU spinning steals time from the tokenizer
    # and from other processes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=providers)


def split_outputs(task: str, logits: torch.Tensor, items: list[WorkItem]) -> list[torch.Tensor]:
    """Each text's part of the batch logits, shaped as the torch runner returns it."""
    if task == "token_classification":
        return [logits[row, : item.request_length].clone() for row, item in enumerate(items)]
    if task == "sequence_classification":
        return [row.clone() for row in logits]
    return [logits[row, item.payload.mask_positions] for row, item in enumerate(items)]


# -- the runner --------------------------------------------------------------------------------------------

class OnnxEncoderRunner(EncoderRunner):
    """EncoderRunner whose forward pass is an ONNX Runtime session over the exported model."""

    def __init__(self, config: ServeConfig):
        self.ort = require_onnxruntime()
        if config.dtype not in FLOAT32_NAMES:
            raise SystemExit(f"workbench serve: --backend onnxruntime runs float32 (or int8 with --quantize "
                             f"int8); --dtype {config.dtype} is for the torch backend")
        super().__init__(config.replace(dtype="float32", device="cpu"))
        self.requested_device = config.device
        self.session = None
        self.onnx_path: Path | None = None
        self.from_cache = False

    def load(self) -> None:
        super().load()  # tokenizer, labels, limits, and the torch model (exported on a cache miss)
        if self.task == TEXT_EMBEDDING:
            raise SystemExit("workbench serve: --backend onnxruntime exports task heads' logits; text_embedding "
                             "is served by the torch backend (the default)")
        self.packing = False  # the exported graph takes a 2D mask: padded batches, split by length
        directory = cache_dir(self.config, self.task, model_digest(self.config.model_source))
        self.onnx_path, self.from_cache = ensure_onnx_model(self.model, self.input_names, directory,
                                                            self.config.quantize)
        providers = pick_providers(self.ort, self.requested_device)
        self.session = build_session(self.ort, self.onnx_path, providers, torch.get_num_threads())
        self.session_inputs = [i.name for i in self.session.get_inputs()]
        log.info("onnxruntime %s: %s (%s), providers %s, %d threads", self.ort.__version__, self.onnx_path,
                 "from the cache" if self.from_cache else "exported now", providers, torch.get_num_threads())

    def prepare(self, items: list[WorkItem]) -> PreparedBatch:
        length = padded_length(max(item.request_length for item in items), 8, self.max_positions)
        n = len(items)
        input_ids = np.full((n, length), self.tokenizer.pad_token_id, dtype=np.int64)
        attention = np.zeros((n, length), dtype=np.int64)
        types = np.zeros((n, length), dtype=np.int64)
        for row, item in enumerate(items):
            enc = item.payload
            size = len(enc)
            input_ids[row, :size] = enc.input_ids
            attention[row, :size] = 1
            if enc.token_type_ids is not None:
                types[row, :size] = enc.token_type_ids
        tensors: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention, "token_type_ids": types}
        return PreparedBatch(items, {name: tensors[name] for name in self.session_inputs}, length,
                             real_tokens=sum(len(item.payload) for item in items), computed_tokens=n * length)

    def forward(self, batch: PreparedBatch) -> list[torch.Tensor]:
        (logits,) = self.session.run(["logits"], batch.tensors)
        return split_outputs(self.task, torch.from_numpy(logits), batch.items)

