"""KServe's own model server hosting a Hugging Face encoder: the "server nobody here wrote".

A small `kserve.Model` that does what KServe's Hugging Face runtime (`huggingfaceserver`,
`HuggingfaceEncoderModel`) does for the encoder tasks, served by `kserve.ModelServer`:

- the request's texts are tokenized together (`padding=True, truncation=True`), lowercased by
  default (`--disable_lower_case` turns it off, as in the runtime's CLI), and run in ONE forward
  pass, blocking the event loop, one request at a time -- exactly as the runtime does;
- token classification: per text a 1xS list of label ids, or S dicts `{label_id: p}` rounded to
  4 places (`--return_probabilities`), or raw logits (`--return_raw_logits`);
- sequence classification: one id / dict per text; fill mask: the decoded argmax token(s) at the
  mask positions, or per mask a V-long list of `{token_id: value}`;
- responses are built with kserve's own `get_predict_response` (V1 `{"predictions": ...}`, V2
  `InferResponse` / `InferOutput` named `output-0`), so shapes, datatypes and `str(dict)` BYTES are
  KServe's, not ours.

It is deliberately NOT optimised: the conformance suite and the throughput benchmarks use it as
KServe's stand-in. It needs the `kserve` package (a test extra of workbench).

    python -m workbench.testsupport.kserve_modelserver --model_dir DIR --model_name NAME --http_port P \
        [--task T] [--return_probabilities | --return_raw_logits] [--disable_lower_case]

Ports: `--http_port` (default 8080) serves REST V1 + V2; gRPC is off unless `--grpc_port` is given.
Readiness: `GET /v2/health/ready` answers 200 once the model is loaded.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.tasks import LOGIT_TASKS, infer_task, model_class


def postprocess_sequence_classification(logits, *, probabilities: bool, raw_logits: bool) -> list:
    """Per row: the argmax id, `{j: round4(p)}`, or `{j: logit}` (KServe's encoder_model semantics)."""
    import torch

    rows = []
    for row in logits:
        if raw_logits:
            rows.append({j: row[j].item() for j in range(row.size(0))})
        elif probabilities:
            probs = torch.softmax(row, dim=-1)
            rows.append({j: float(f"{probs[j]:.4f}") for j in range(probs.size(0))})
        else:
            rows.append(int(row.argmax().item()))
    return rows


def postprocess_token_classification(logits, *, probabilities: bool, raw_logits: bool) -> list:
    """Per text: `[[id, ...]]` (1xS), or S dicts of probabilities (4 places) / raw logits."""
    import torch

    rows = []
    for row in logits:  # row: [S, num_labels]
        if raw_logits:
            rows.append([{j: values[j].item() for j in range(values.size(0))} for values in row])
        elif probabilities:
            probs = torch.softmax(row, dim=-1)
            rows.append([{j: float(f"{values[j]:.4f}") for j in range(values.size(0))} for values in probs])
        else:
            rows.append([row.argmax(dim=-1).tolist()])
    return rows


def postprocess_fill_mask(logits, input_ids, tokenizer, *, probabilities: bool, raw_logits: bool) -> list:
    """Per text: the decoded argmax token(s) at the mask positions, or per mask a V-long list of dicts."""
    import torch

    rows = []
    for i in range(logits.shape[0]):
        positions = (input_ids[i] == tokenizer.mask_token_id).nonzero(as_tuple=True)[0]
        masked = logits[i, positions]  # [M, V]
        if raw_logits:
            rows.append([[{token_id: value.item()} for token_id, value in enumerate(values)] for values in masked])
        elif probabilities:
            probs = torch.softmax(masked, dim=-1)
            rows.append([[{token_id: f"{p.item():.4f}"} for token_id, p in enumerate(values)] for values in probs])
        else:
            rows.append(tokenizer.decode(masked.argmax(dim=-1)))
    return rows


def build_model_class():
    """The kserve.Model subclass; built lazily so importing this module does not import kserve."""
    import torch
    from kserve import Model
    from kserve.utils.utils import get_predict_input, get_predict_response
    from transformers import AutoConfig, AutoTokenizer

    class ReferenceEncoderModel(Model):
        def __init__(self, name: str, model_dir: str, *, task: str | None = None, do_lower_case: bool = True,
                     add_special_tokens: bool = True, max_length: int | None = None,
                     return_probabilities: bool = False, return_raw_logits: bool = False):
            super().__init__(name)
            self.model_dir = model_dir
            self.config = AutoConfig.from_pretrained(model_dir)
            self.task = task or infer_task(self.config.architectures)
            if self.task not in LOGIT_TASKS:  # a headless model infers text_embedding here, not in KServe
                raise ValueError(f"this stand-in transcribes the tasks with heads ({', '.join(LOGIT_TASKS)}), not "
                                 f"{self.task}; KServe's real runtime (workbench.testsupport.kserve_runtime) serves it")
            self.do_lower_case = do_lower_case
            self.add_special_tokens = add_special_tokens
            self.max_length = max_length or getattr(self.config, "max_position_embeddings", None)
            self.return_probabilities = return_probabilities
            self.return_raw_logits = return_raw_logits
            self.tokenizer = None
            self.network = None

        def load(self) -> bool:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, do_lower_case=self.do_lower_case)
            # As KServe's runtime: CUDA when available, and dtype "auto" = float16 there, float32 on the CPU.
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            dtype = torch.float16 if self.device.type == "cuda" else torch.float32
            self.network = model_class(self.task).from_pretrained(self.model_dir, dtype=dtype).to(self.device)
            self.network.eval()
            self.ready = True
            return self.ready

        def preprocess(self, payload: Any, context: dict[str, Any]) -> Any:
            texts = get_predict_input(payload)
            if isinstance(texts, str):
                texts = [texts]
            encoded = self.tokenizer(list(texts), max_length=self.max_length, add_special_tokens=self.add_special_tokens,
                                     return_tensors="pt", padding=True, truncation=True)
            context["payload"] = payload
            context["input_ids"] = encoded["input_ids"]
            return encoded

        async def predict(self, encoded: Any, context: dict[str, Any]) -> Any:
            # Blocking on purpose: KServe's runtime runs the forward pass inside the event loop.
            with torch.no_grad():
                return self.network(**encoded.to(self.device), return_dict=True).logits.cpu()

        def postprocess(self, logits: Any, context: dict[str, Any]) -> Any:
            flags = dict(probabilities=self.return_probabilities, raw_logits=self.return_raw_logits)
            if self.task == "sequence_classification":
                result = postprocess_sequence_classification(logits, **flags)
            elif self.task == "token_classification":
                result = postprocess_token_classification(logits, **flags)
            else:
                result = postprocess_fill_mask(logits, context["input_ids"], self.tokenizer, **flags)
            return get_predict_response(context["payload"], result, self.name)

    return ReferenceEncoderModel


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbench.testsupport.kserve_modelserver",
        description="Serve a Hugging Face encoder model with KServe's own ModelServer, as KServe's HF runtime would.")
    parser.add_argument("--model_dir", required=True, help="a saved Hugging Face model directory")
    parser.add_argument("--model_name", default="model", help="the name in URLs (default: model)")
    parser.add_argument("--http_port", type=int, default=8080, help="REST port (default: 8080)")
    parser.add_argument("--grpc_port", type=int, default=None, help="also serve gRPC on this port (default: off)")
    parser.add_argument("--task", choices=LOGIT_TASKS, default=None, help="default: inferred from config.architectures")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--return_probabilities", action="store_true")
    modes.add_argument("--return_raw_logits", action="store_true")
    parser.add_argument("--disable_lower_case", action="store_true", help="keep the input's case (default: lowercase)")
    parser.add_argument("--disable_special_tokens", action="store_true")
    parser.add_argument("--max_length", type=int, default=None)
    return parser


def _import_kserve():
    """Import kserve without letting its import-time argument parser read our command line."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve
    except ImportError:
        raise SystemExit("the KServe ModelServer stand-in needs the kserve package: "
                         "pip install 'workbench[test]' (or pip install kserve)") from None
    finally:
        sys.argv = saved
    return kserve


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kserve = _import_kserve()
    encoder_model = build_model_class()
    model = encoder_model(args.model_name, args.model_dir, task=args.task, do_lower_case=not args.disable_lower_case,
                        add_special_tokens=not args.disable_special_tokens, max_length=args.max_length,
                        return_probabilities=args.return_probabilities, return_raw_logits=args.return_raw_logits)
    model.load()
    server = kserve.ModelServer(http_port=args.http_port, grpc_port=args.grpc_port or 0,
                                enable_grpc=args.grpc_port is not None, workers=1)
    server.start([model])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
