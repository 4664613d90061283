"""bfloat16 vs float32 on this machine: label agreement and speed, through the predictor's own runner.

    python benchmarks/dtype_agreement.py --model_dir outputs/ner-minilm [--texts N] [--batch 32]

Texts: the CoNLL-2003 validation sentences from ../shared/data/conll2003 when present (else the
project's own sample). For token classification it prints the share of real (non-padding) sub-word
tokens whose label agrees, the share of sentences whose labels agree entirely, and texts/s of both
dtypes with the ratio; for sequence classification the share of texts whose label agrees.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from workbench.serving.args import ServeConfig
from workbench.serving.batching import WorkItem
from workbench.serving.runner import EncoderRunner

REPO = Path(__file__).resolve().parents[1]


def load_texts(limit: int) -> list[str]:
    conll = Path(os.environ.get("WORKBENCH_CONLL_DIR", REPO.parent / "shared/data/conll2003")) / "valid.txt"
    texts: list[str] = []
    if conll.exists():
        words: list[str] = []
        for line in conll.read_text().splitlines() + [""]:
            if not line.strip() or line.startswith("-DOCSTART-"):
                if words:
                    texts.append(" ".join(words))
                words = []
            else:
                words.append(line.split()[0])
    else:
        from workbench.bench.workload import load_texts as sample_texts

        texts = sample_texts(None)  # the built-in sample
    return texts[:limit]


def run(runner: EncoderRunner, texts: list[str], batch: int, label: str):
    labels, started = [], time.perf_counter()
    for start in tqdm(range(0, len(texts), batch), desc=label, unit="batch"):
        chunk = texts[start:start + batch]
        encoded = runner.tokenize(chunk)
        request_length = max(len(e) for e in encoded)
        items = [WorkItem(e, request_length) for e in encoded]
        outputs = runner.forward(runner.prepare(items))
        for enc, out in zip(encoded, outputs):
            ids = out.float().argmax(dim=-1)
            labels.append(ids[: len(enc)].tolist() if ids.dim() else int(ids))
    return labels, len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--texts", type=int, default=1000, help="how many texts (default 1000)")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    texts = load_texts(args.texts)
    results = {}
    for dtype in ("float32", "bfloat16"):
        runner = EncoderRunner(ServeConfig(model_dir=args.model_dir, dtype=dtype, device="cpu"))
        runner.load()
        run(runner, texts[: args.batch], args.batch, f"{dtype} warm-up")
        results[dtype] = run(runner, texts, args.batch, dtype)
    (fp32, fp32_speed), (bf16, bf16_speed) = results["float32"], results["bfloat16"]
    print(f"\nmodel {args.model_dir}, {len(texts)} texts, batch {args.batch}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    if isinstance(fp32[0], list):
        tokens = sum(len(a) for a in fp32)
        same_tokens = sum(x == y for a, b in zip(fp32, bf16) for x, y in zip(a, b))
        same_texts = sum(a == b for a, b in zip(fp32, bf16))
        print(f"token label agreement    {same_tokens / tokens:.4%}  ({tokens - same_tokens} of {tokens} sub-word tokens differ)")
        print(f"sentence agreement       {same_texts / len(texts):.2%}  (all labels equal)")
    else:
        same = sum(a == b for a, b in zip(fp32, bf16))
        print(f"label agreement          {same / len(texts):.2%}")
    print(f"float32   {fp32_speed:8.1f} texts/s")
    print(f"bfloat16  {bf16_speed:8.1f} texts/s   ratio bf16/fp32 {bf16_speed / fp32_speed:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
