"""1 vs 2 (or N) torch intra-op threads on this CPU, alternating in one process so both see the same load.

    python benchmarks/cpu_threads.py MODEL_DIR [--threads 1 2] [--reps 3]

A BERT-base-shaped sequence classifier with random weights (speed depends on shapes, not values), the
tokenizer of MODEL_DIR, 32 varied texts (lines of docs/*.md, seeded sample), batches of 8 padded to
their longest (at most 128 tokens). Prints seconds per pass over the texts for each thread count.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", help="a directory with a tokenizer (the tiny test models have one)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    lines = [line.strip() for path in sorted((REPO / "docs").glob("*.md"))
             for line in path.read_text(errors="replace").splitlines() if len(line.strip()) > 20]
    texts = random.Random(1).sample(lines, 32)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    batches = [tokenizer(texts[i:i + 8], padding=True, truncation=True, max_length=128, return_tensors="pt")
               for i in range(0, 32, 8)]
    print("batch shapes:", [tuple(b["input_ids"].shape) for b in batches], "load average", os.getloadavg())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=max(tokenizer.vocab_size, 100), attn_implementation="sdpa")
    model = BertForSequenceClassification(config).eval()
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    with torch.inference_mode():
        model(**batches[0])  # warm up
        for _ in range(args.reps):
            for n in args.threads:
                torch.set_num_threads(n)
                start = time.perf_counter()
                for batch in batches:
                    model(**batch)
                times[n].append(time.perf_counter() - start)
    for n, seconds in times.items():
        print(f"{n} thread(s): seconds for 32 texts", [round(s, 2) for s in seconds],
              "median", round(statistics.median(seconds), 2))
    print("load average", os.getloadavg())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
