"""The bare model's throughput on the benchmark's texts: what any server of this model could reach.

No HTTP, no queue, texts tokenized up front: only forward passes are timed, over three layouts of the
same texts in batches of `batch_size`:

- `arrival, padded`: batches in arrival order, each padded to its longest text (what a plain batcher does);
- `sorted, padded`: the whole corpus sorted by length first, so each batch is padded very little;
- `arrival, packed`: batches in arrival order, their texts laid end to end in shared rows with a
  block-diagonal mask (`workbench.serving.runner.packed_tensors`, the predictor's torch layout);
- `arrival, split`: batches in arrival order, each split into length groups padded separately
  (`workbench.serving.batching.split_by_length`, the predictor's layout where it cannot pack: ONNX Runtime,
  sequence classification). `--split_overheads 0,8,16,32` times that layout at several fixed costs per pass.

The ceiling is the fastest padding-free layout (`sorted, padded` or `arrival, packed`).

    python benchmarks/serving_ceiling.py --model_dir DIR [--texts FILE] [--count 640] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

LAYOUTS = ("arrival, padded", "sorted, padded", "arrival, packed", "arrival, split")
PADDING_FREE = ("sorted, padded", "arrival, packed")


def padded_batch(encoded: list[list[int]], pad_id: int) -> dict:
    import torch

    length = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), length), dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def packed_batch(encoded: list[list[int]], pad_id: int) -> dict:
    from workbench.serving.batching import balanced_row_tokens, pack_rows, padded_length
    from workbench.serving.runner import PACK_ROW_TOKENS, Encoded, packed_tensors

    segments = [len(ids) for ids in encoded]
    places = pack_rows(segments, balanced_row_tokens(segments, PACK_ROW_TOKENS))
    length = padded_length(max(start + size for (_, start), size in zip(places, segments)), 8)
    items = [Encoded(input_ids=ids, token_type_ids=None) for ids in encoded]
    return packed_tensors(items, segments, places, length, pad_id, with_types=False)


def split_groups(group: list[list[int]], overhead_tokens: int) -> list[list[list[int]]]:
    from workbench.serving.batching import split_by_length

    return [[group[i] for i in part] for part in split_by_length([len(ids) for ids in group], overhead_tokens)]


def layout_batches(encoded: list[list[int]], layout: str, batch_size: int, pad_id: int,
                   overhead_tokens: int | None = None) -> list[dict]:
    from workbench.serving.runner import SPLIT_OVERHEAD_TOKENS

    order = sorted(encoded, key=len) if layout.startswith("sorted") else list(encoded)
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if layout.endswith("split"):
        overhead = SPLIT_OVERHEAD_TOKENS if overhead_tokens is None else overhead_tokens
        groups = [part for group in groups for part in split_groups(group, overhead)]
    build = packed_batch if layout.endswith("packed") else padded_batch
    return [build(group, pad_id) for group in groups]


def computed_tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


def time_layout(model, batches: list[dict]) -> float:
    """Seconds for one forward pass over every batch (after one warm-up batch)."""
    import torch

    with torch.inference_mode():
        model(**batches[0])
        started = time.perf_counter()
        for batch in batches:
            model(**batch)
        return time.perf_counter() - started


def load(model_dir: str | Path, texts: list[str]):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, attn_implementation="sdpa").eval()
    return tokenizer, model, [tokenizer(text, truncation=True)["input_ids"] for text in texts]


def measure_split_overheads(model_dir: str | Path, texts: list[str], overheads: list[int], batch_size: int = 32,
                            threads: int | None = None) -> dict[int, float]:
    """Sequences/s of the `arrival, split` layout at each fixed cost per pass (0: no split)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    tokenizer, model, encoded = load(model_dir, texts)
    return {overhead: round(len(texts) / time_layout(model, layout_batches(
        encoded, "arrival, split", batch_size, tokenizer.pad_token_id, overhead)), 1) for overhead in overheads}


def measure_ceiling(model_dir: str | Path, texts: list[str], batch_size: int = 32, threads: int | None = None) -> dict:
    """Sequences/s of each layout, the real/computed token ratio of each, and the ceiling."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    tokenizer, model, encoded = load(model_dir, texts)
    real = sum(len(ids) for ids in encoded)
    layouts = {}
    for layout in LAYOUTS:
        batches = layout_batches(encoded, layout, batch_size, tokenizer.pad_token_id)
        seconds = time_layout(model, batches)
        layouts[layout] = {"seq_per_s": round(len(texts) / seconds, 1),
                           "padding_efficiency": round(real / sum(computed_tokens(b) for b in batches), 3)}
    best = max(PADDING_FREE, key=lambda name: layouts[name]["seq_per_s"])
    return {"texts": len(texts), "batch_size": batch_size, "threads": torch.get_num_threads(),
            "layouts": layouts, "ceiling_layout": best, "ceiling_seq_per_s": layouts[best]["seq_per_s"]}


def print_ceiling(result: dict) -> None:
    print(f"bare model, {result['texts']} texts, batches of {result['batch_size']}, "
          f"{result['threads']} torch threads, forward passes only:")
    for layout, row in result["layouts"].items():
        print(f"  {layout:<16} {row['seq_per_s']:>8.1f} seq/s   padding efficiency {row['padding_efficiency']:.0%}")
    print(f"  ceiling ({result['ceiling_layout']}): {result['ceiling_seq_per_s']:.1f} seq/s")


def main(argv: list[str] | None = None) -> int:
    from corpus import benchmark_texts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--texts", default=None, help="one text per line, or a CoNLL file (default: CoNLL valid)")
    parser.add_argument("--count", type=int, default=640, help="texts to run (default 640)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--split_overheads", help="comma-separated fixed costs per pass to time the split layout at")
    args = parser.parse_args(argv)
    texts, source = benchmark_texts(args.texts, args.count)
    print(f"texts: {source}")
    if args.split_overheads:
        overheads = [int(x) for x in args.split_overheads.split(",")]
        for overhead, rate in measure_split_overheads(args.model_dir, texts, overheads, args.batch_size,
                                                      args.threads).items():
            print(f"  arrival, split at overhead {overhead:>4} tokens: {rate:>8.1f} seq/s")
        return 0
    print_ceiling(measure_ceiling(args.model_dir, texts, args.batch_size, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
