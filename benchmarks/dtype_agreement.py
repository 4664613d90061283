"""Each backend and dtype against torch float32, through the predictor's own runners: labels, F1, speed.

    python benchmarks/dtype_agreement.py --model_dir DIR_FROM_train/ner.py [--agreement_texts 1000]
        [--variants torch-fp32,torch-bf16,ort-fp32,ort-int8] [--batch 32]

On the CoNLL-2003 validation file (`../shared`, or `--conll FILE`):
- sub-word label agreement with torch float32 on the first `--agreement_texts` sentences (real tokens
  only), and the share of those sentences whose labels all agree;
- entity F1 (seqeval, conlleval mode) on every validation sentence, each word tagged with its first
  sub-token's label (the training script's evaluation rule);
- texts/s of each variant over the whole file, batches of `--batch` in file order split as the batch queue
  splits them (packed rows for torch, length groups for ONNX Runtime), no HTTP.

torch bfloat16 is reported with whether this CPU runs it natively (AMX / AVX512-BF16) or emulates it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from corpus import default_texts_file  # noqa: E402

# name -> ServeConfig overrides
VARIANTS: dict[str, dict] = {
    "torch-fp32": {"dtype": "float32"},
    "torch-bf16": {"dtype": "bfloat16"},
    "ort-fp32": {"backend": "onnxruntime"},
    "ort-int8": {"backend": "onnxruntime", "quantize": "int8"},
}


def word_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """Character spans of the words in `" ".join(tokens)`."""
    spans, start = [], 0
    for token in tokens:
        spans.append((start, start + len(token)))
        start += len(token) + 1
    return spans


def word_tags(offsets: list[tuple[int, int]], labels: list[str], spans: list[tuple[int, int]]) -> list[str]:
    """Each word's tag: the label of the first sub-token starting inside it ("O" if truncated away)."""
    tags: list[str | None] = [None] * len(spans)
    word = 0
    for (start, end), label in zip(offsets, labels):
        if end == start:  # special tokens
            continue
        while word < len(spans) and start >= spans[word][1]:
            word += 1
        if word < len(spans) and tags[word] is None and start >= spans[word][0]:
            tags[word] = label
    return [tag or "O" for tag in tags]


def batch_groups(runner, encoded) -> list[list[int]]:
    """One group (packing runners) or length groups (padding runners), as `BatchQueue` splits a batch."""
    from workbench.serving.batching import split_by_length

    if runner.split_overhead_tokens > 0:
        return split_by_length([len(e) for e in encoded], runner.split_overhead_tokens)
    return [list(range(len(encoded)))]


def predict(runner, texts: list[str], batch: int) -> tuple[list[list[int]], list[list[tuple[int, int]]], float]:
    """Sub-word label ids and offsets per text, and texts/s."""
    from tqdm import tqdm

    from workbench.serving.batching import WorkItem

    ids, offsets = [], []
    warm = runner.tokenize(texts[:batch])
    runner.forward(runner.prepare([WorkItem(e, max(len(x) for x in warm)) for e in warm]))
    started = time.perf_counter()
    for first in tqdm(range(0, len(texts), batch), unit="batch", leave=False, disable=None):
        encoded = runner.tokenize(texts[first:first + batch])
        outputs: list = [None] * len(encoded)
        for group in batch_groups(runner, encoded):  # as the batch queue plans them
            items = [WorkItem(encoded[i], len(encoded[i])) for i in group]  # one text per request
            for index, out in zip(group, runner.forward(runner.prepare(items))):
                outputs[index] = out
        for enc, out in zip(encoded, outputs):
            ids.append(out.float().argmax(dim=-1)[:len(enc)].tolist())
            offsets.append(enc.offsets)
    return ids, offsets, len(texts) / (time.perf_counter() - started)


def make(model_dir: str, overrides: dict):
    from workbench.serving.args import ServeConfig
    from workbench.serving.backends import make_runner

    runner = make_runner(ServeConfig(model_dir=model_dir, device="cpu", return_offsets_mapping=True, **overrides))
    runner.load()
    return runner


def main(argv: list[str] | None = None) -> int:
    from workbench.ner.conll import read_sentences
    from workbench.ner.evaluation import load_seqeval, score
    from workbench.serving.hardware import bf16_support, detect_capability, detect_cpu_flags

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a token-classification model (train/ner.py)")
    parser.add_argument("--conll", help="CoNLL file with gold tags (default: ../shared CoNLL-2003 valid.txt)")
    parser.add_argument("--agreement_texts", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    conll = args.conll or default_texts_file()
    if conll is None:
        print("no CoNLL file: pass --conll or put CoNLL-2003 in ../shared/data/conll2003", file=sys.stderr)
        return 2
    sentences = read_sentences(conll)[0]
    texts = [" ".join(s.tokens) for s in sentences]
    gold = [s.tags for s in sentences]
    metric = load_seqeval()
    results = {}
    for name in args.variants.split(","):
        runner = make(args.model_dir, VARIANTS[name])
        ids, offsets, speed = predict(runner, texts, args.batch)
        labels = [[runner.id2label[i] for i in row] for row in ids]
        predicted = [word_tags(o, l, word_spans(s.tokens)) for o, l, s in zip(offsets, labels, sentences)]
        results[name] = {"ids": ids, "speed": speed, "f1": score(metric, predicted, gold)["overall_f1"]}
        print(f"{name}: F1 {results[name]['f1']:.4f}, {speed:.1f} texts/s", flush=True)
        del runner
    import torch

    print(f"\nmodel {args.model_dir}; {len(texts)} validation sentences from {conll}; batch {args.batch}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}; "
          f"bf16 on this CPU: {bf16_support(detect_cpu_flags(), detect_capability())}")
    reference = results.get("torch-fp32")
    n = args.agreement_texts
    print(f"{'variant':<11} {'label agreement':>16} {'sentences equal':>16} {'F1':>8} {'texts/s':>9}")
    for name, row in results.items():
        agree, equal = "-", "-"
        if reference is not None:
            pairs = list(zip(reference["ids"][:n], row["ids"][:n]))
            tokens = sum(len(a) for a, _ in pairs)
            agree = f"{sum(x == y for a, b in pairs for x, y in zip(a, b)) / tokens:.4%}"
            equal = f"{sum(a == b for a, b in pairs) / len(pairs):.2%}"
        print(f"{name:<11} {agree:>16} {equal:>16} {row['f1']:>8.4f} {row['speed']:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
