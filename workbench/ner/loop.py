"""The training loop, in the steps a reader follows (accelerate's `examples/by_feature` style).

`workbench.ner.train.setup` builds a `Training` (everything prepared by Accelerate) and a
`TrainingState` (the progress a checkpoint saves). Then, per epoch, `train_one_epoch` and
`evaluate_and_keep_best`; at the end `finish` scores the test split with the best model and
writes `results.json`. Every process runs every function; writes happen on the main process.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from workbench.ner.checkpoints import atomic_files_write, read_trainer_state, save_checkpoint, write_json_atomic

PREDICTIONS_FILE = "validation_predictions.txt"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
NO_ENTITIES_WARNING = (
    "warning: validation F1 is 0.0000: the model finds no entity (it predicts only `O`). It usually trained "
    "too briefly: train longer (more --num_train_epochs or --max_train_steps; a few hundred steps at least) "
    "or raise --learning_rate (1e-4 suits MiniLM); the model was saved all the same.")


class TrainingError(RuntimeError):
    """A problem found before or during training, explained for the user."""


@dataclass
class TrainingState:
    """Where the run stands; saved as trainer_state.json in every checkpoint."""

    completed_steps: int = 0
    epoch: int = 0  # the epoch in progress (0-based), or the next one once an epoch is evaluated
    batches_done_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_batches: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per evaluated epoch
    best: dict | None = None
    best_f1: float = -1.0
    train_seconds: float = 0.0
    train_tokens: int = 0  # non-padding sub-tokens trained on, all processes together
    train_sentences: int = 0
    wall_seconds: float = 0.0
    resumed_from: str | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> TrainingState:
        saved = read_trainer_state(checkpoint)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in known})


@dataclass
class Training:
    """What `setup` prepared: fixed for the whole run."""

    args: Any
    accelerator: Any
    output_dir: Path
    model_path: str
    labels: list[str]
    validation_sentences: list
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    train_sampler: Any
    train_dataloader: Any
    eval_sampler: Any
    eval_dataloader: Any
    test_dataloader: Any  # None without a test split
    metric: Any
    num_epochs: int
    max_train_steps: int
    extra: dict  # results.json's fixed part: labels, model, processes, data notes
    progress: Any
    started: float = field(default_factory=time.perf_counter)
    wall_before: float = 0.0  # wall seconds of the run a checkpoint resumed
    best_state_dict: dict | None = None

    @property
    def checkpoint_every(self) -> int | None:
        value = self.args.checkpointing_steps or ""
        return int(value) if value.isdigit() else None


def summed(accelerator, counts: list[int]) -> list[int]:
    """Integer counts summed over all processes (each process passes its own)."""
    import torch

    total = accelerator.reduce(torch.tensor(counts, dtype=torch.int64, device=accelerator.device), reduction="sum")
    return [int(x) for x in total.tolist()]


def add_counts(t: Training, state: TrainingState, local: list[int]) -> None:
    """Add this process's [tokens, sentences] (summed over all processes) to the state; reset them."""
    tokens, sentences = summed(t.accelerator, local)
    state.train_tokens += tokens
    state.train_sentences += sentences
    local[:] = [0, 0]


def checkpoint(t: Training, state: TrainingState, name: str) -> None:
    state.wall_seconds = t.wall_before + time.perf_counter() - t.started
    save_checkpoint(t.accelerator, t.output_dir / name, asdict(state))


def epoch_batches(t: Training, state: TrainingState):
    """The epoch's batches: all of them, or those after a mid-epoch checkpoint when resuming."""
    skip = state.batches_done_in_epoch
    if not skip:
        state.epoch_loss_sum, state.epoch_loss_batches = 0.0, 0
        return t.train_dataloader
    if skip >= len(t.train_dataloader):
        return []  # the checkpoint was taken on the epoch's last batch: evaluate next
    return t.accelerator.skip_first_batches(t.train_dataloader, skip)


def train_one_epoch(t: Training, state: TrainingState, epoch: int) -> None:
    accelerator, model, args = t.accelerator, t.model, t.args
    state.epoch = epoch
    model.train()
    t.train_sampler.set_epoch(epoch)
    local = [0, 0]  # this process's sub-tokens and sentences since the last sum
    step_start = time.perf_counter()
    for batch in epoch_batches(t, state):
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            t.optimizer.step()
            t.scheduler.step()
            t.optimizer.zero_grad()
        state.batches_done_in_epoch += 1
        if not math.isfinite(float(loss.detach())):
            raise TrainingError(
                f"the training loss is {float(loss.detach())} at step {state.completed_steps + 1} (epoch {epoch + 1}): "
                "training diverged; lower --learning_rate or raise --warmup_ratio (nothing was saved for this step)")
        state.epoch_loss_sum += float(loss.detach())
        state.epoch_loss_batches += 1
        local[0] += int(batch["attention_mask"].sum())
        local[1] += int(batch["input_ids"].shape[0])
        if not accelerator.sync_gradients:
            continue
        state.completed_steps += 1
        t.progress.update(1)
        t.progress.set_postfix(loss=f"{float(loss.detach()):.4f}", epoch=epoch + 1)
        if t.checkpoint_every and state.completed_steps % t.checkpoint_every == 0:
            state.train_seconds += time.perf_counter() - step_start
            add_counts(t, state, local)
            checkpoint(t, state, f"step_{state.completed_steps}")
            step_start = time.perf_counter()
        if state.completed_steps >= t.max_train_steps:
            break
    state.train_seconds += time.perf_counter() - step_start
    add_counts(t, state, local)


def evaluate_and_keep_best(t: Training, state: TrainingState, epoch: int) -> dict:
    """Score the validation split; a better F1 saves the model (and its predictions) as the best."""
    from workbench.ner.conll import write_predictions
    from workbench.ner.evaluation import in_data_order, predict_tags, scored
    from workbench.ner.plots import plot_training_curves

    accelerator, args = t.accelerator, t.args
    predicted, gold, loss = predict_tags(t.model, t.eval_dataloader, accelerator, t.labels,
                                         show_progress=not args.disable_tqdm)
    scores = scored(t.metric, predicted, gold, loss, strict=args.strict)
    train_loss = state.epoch_loss_sum / max(state.epoch_loss_batches, 1)
    entry = epoch_entry(epoch + 1, state.completed_steps, train_loss, scores)
    state.history.append(entry)
    accelerator.print(
        f"epoch {epoch + 1}: train loss {train_loss:.4f}, validation loss {scores['loss']:.4f}, "
        f"F1 {scores['overall_f1']:.4f} (P {scores['overall_precision']:.4f}, R {scores['overall_recall']:.4f})"
        + (f", strict F1 {scores['strict']['overall_f1']:.4f}" if args.strict else ""))
    if scores["overall_f1"] > state.best_f1 or state.best is None:
        state.best_f1 = scores["overall_f1"]
        state.best = {k: v for k, v in entry.items() if k != "train_loss"}
        save_best_model(accelerator, t.model, t.tokenizer, t.output_dir)
        if accelerator.is_main_process:
            write_predictions(t.validation_sentences, in_data_order(t.eval_sampler.order, predicted),
                              t.output_dir / PREDICTIONS_FILE)
        if t.test_dataloader is not None:
            t.best_state_dict = {k: v.detach().cpu().clone()
                                 for k, v in accelerator.unwrap_model(t.model).state_dict().items()}
    state.epoch = epoch + 1
    state.batches_done_in_epoch = 0
    state.wall_seconds = t.wall_before + time.perf_counter() - t.started
    if args.checkpointing_steps == "epoch":
        checkpoint(t, state, f"epoch_{epoch + 1}")
    if accelerator.is_main_process:
        write_results(t, state)
        plot_training_curves(state.history, t.output_dir / "training_curves.png")
    return scores


def finish(t: Training, state: TrainingState) -> dict:
    """Test split with the best model (if any), the final results.json, a summary line."""
    from workbench.ner.evaluation import evaluate_model

    accelerator = t.accelerator
    t.progress.close()
    if t.test_dataloader is not None:
        if t.best_state_dict is not None:
            accelerator.unwrap_model(t.model).load_state_dict(t.best_state_dict)
        test_scores = evaluate_model(t.model, t.test_dataloader, accelerator, t.labels, t.metric,
                                     strict=t.args.strict, show_progress=not t.args.disable_tqdm)
        t.extra["test"] = test_scores
        accelerator.print(f"test (best model): F1 {test_scores['overall_f1']:.4f}")
    state.wall_seconds = t.wall_before + time.perf_counter() - t.started
    results: dict = {}
    if accelerator.is_main_process:
        results = write_results(t, state)
        if not state.history:
            raise TrainingError("no epoch ran (the checkpoint was already at --max_train_steps)")
        best = state.best
        accelerator.print(
            f"best epoch {best['epoch']}: validation F1 {best['overall_f1']:.4f}; "
            f"{results['sentences_per_second']:.1f} sentences/s, {results['tokens_per_second']:.0f} tokens/s "
            f"in training; wall time {results['wall_time_seconds']:.1f}s; model saved in {t.output_dir}")
        if best["overall_f1"] == 0.0:
            accelerator.print(NO_ENTITIES_WARNING)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


# ----------------------------------------------------------------------------------------- outputs

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


def epoch_entry(epoch: int, step: int, train_loss: float, scores: dict) -> dict:
    entry = {"epoch": epoch, "step": step, "train_loss": train_loss, "eval_loss": scores["loss"]}
    entry.update({k: v for k, v in scores.items() if k.startswith("overall_")})
    entry["per_entity"] = scores["per_entity"]
    if "strict" in scores:
        entry["strict"] = scores["strict"]
        entry["strict_f1"] = scores["strict"]["overall_f1"]
    return entry


def write_results(t: Training, state: TrainingState) -> dict:
    train_seconds = max(state.train_seconds, 1e-9)
    results = {
        "best": state.best,
        "epochs": state.history,
        "tokens_per_second": state.train_tokens / train_seconds,
        "sentences_per_second": state.train_sentences / train_seconds,
        "train_seconds": state.train_seconds,
        "train_tokens": state.train_tokens,
        "train_sentences": state.train_sentences,
        "wall_time_seconds": state.wall_seconds,
        "completed_steps": state.completed_steps,
        **t.extra,
        "args": vars(t.args),
    }
    write_json_atomic(t.output_dir / "results.json", results)
    return results
