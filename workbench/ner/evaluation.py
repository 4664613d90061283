"""Evaluation: decode predictions to tag strings, gather across processes, score with seqeval.

Scoring is on words: the evaluation data carries a label only on each word's first sub-token
(-100 elsewhere), and `decode_predictions` drops every position whose label is -100, so
continuation sub-tokens, special tokens and padding are never counted.
"""

from __future__ import annotations

from typing import Sequence

from workbench.ner.align import IGNORE_INDEX


def load_seqeval():
    """The local seqeval `evaluate` module (nothing fetched from the Hub)."""
    import evaluate

    from workbench.metrics.seqeval import MODULE_DIR

    return evaluate.load(str(MODULE_DIR))


def decode_predictions(
    predictions: Sequence[Sequence[int]],
    labels: Sequence[Sequence[int]],
    id2label: dict[int, str] | Sequence[str],
) -> tuple[list[list[str]], list[list[str]]]:
    """Predicted and gold tag strings per sentence, keeping only positions with a label (!= -100)."""
    predicted_tags: list[list[str]] = []
    gold_tags: list[list[str]] = []
    for prediction, label in zip(predictions, labels):
        keep = [(int(p), int(g)) for p, g in zip(prediction, label) if int(g) != IGNORE_INDEX]
        predicted_tags.append([id2label[p] for p, _ in keep])
        gold_tags.append([id2label[g] for _, g in keep])
    return predicted_tags, gold_tags


def summarize(scores: dict) -> dict:
    """seqeval's flat dict -> {"overall_*": ..., "per_entity": {TYPE: {...}}}."""
    overall = {k: v for k, v in scores.items() if k.startswith("overall_")}
    per_entity = {k: v for k, v in scores.items() if not k.startswith("overall_")}
    return {**overall, "per_entity": per_entity}


def score(metric, predicted_tags: list[list[str]], gold_tags: list[list[str]], strict: bool = False) -> dict:
    """Default (conlleval) scores, plus a `strict` block (IOB2 strict mode) when asked."""
    result = summarize(metric.compute(predictions=predicted_tags, references=gold_tags, zero_division=0))
    if strict:
        result["strict"] = summarize(metric.compute(predictions=predicted_tags, references=gold_tags,
                                                    mode="strict", scheme="IOB2", zero_division=0))
    return result


def predict_tags(model, dataloader, accelerator, id2label, show_progress: bool = True
                 ) -> tuple[list[list[str]], list[list[str]], float]:
    """Predicted and gold tags of every sentence, gathered from all processes in the loader's order,
    and the mean loss over all batches of all processes.

    Batches have different lengths on different processes, so predictions and labels are padded
    across processes (labels with -100) before gathering; `gather_for_metrics` drops the
    duplicated samples that fill the last batch, so none is counted twice. A count that does not
    match the data is an error, not a silently skewed score.
    """
    import torch
    from tqdm.auto import tqdm

    model.eval()
    predicted_all: list[list[str]] = []
    gold_all: list[list[str]] = []
    loss_sum, loss_batches = 0.0, 0
    bar = tqdm(dataloader, desc="evaluating", leave=False,
               disable=not (show_progress and accelerator.is_local_main_process))
    for batch in bar:
        with torch.no_grad():
            outputs = model(**batch)
        loss_sum += float(outputs.loss.detach())
        loss_batches += 1
        predictions = outputs.logits.argmax(dim=-1)
        labels = batch["labels"]
        predictions = accelerator.pad_across_processes(predictions, dim=1, pad_index=IGNORE_INDEX)
        labels = accelerator.pad_across_processes(labels, dim=1, pad_index=IGNORE_INDEX)
        predictions, labels = accelerator.gather_for_metrics((predictions, labels))
        predicted, gold = decode_predictions(predictions.cpu().tolist(), labels.cpu().tolist(), id2label)
        predicted_all += predicted
        gold_all += gold
    expected = len(dataloader.dataset)
    if len(gold_all) != expected:
        raise RuntimeError(f"evaluation gathered {len(gold_all)} sentences for {expected} in the data "
                           f"({accelerator.num_processes} processes): duplicates were not dropped")
    losses = accelerator.reduce(torch.tensor([loss_sum, loss_batches], device=accelerator.device,
                                             dtype=torch.float64), reduction="sum")
    return predicted_all, gold_all, float(losses[0] / max(losses[1], 1))


def in_data_order(order: Sequence[int], items: Sequence) -> list:
    """Items listed in batch order (`order[k]` is the data index of the k-th) put back in data order."""
    placed: list = [None] * len(order)
    for position, index in enumerate(order):
        placed[index] = items[position]
    return placed


def evaluate_model(model, dataloader, accelerator, id2label, metric, strict: bool = False,
                   show_progress: bool = True) -> dict:
    """Run the model over `dataloader` on every process and score the gathered words."""
    predicted, gold, loss = predict_tags(model, dataloader, accelerator, id2label, show_progress)
    return scored(metric, predicted, gold, loss, strict)


def scored(metric, predicted: list[list[str]], gold: list[list[str]], loss: float, strict: bool = False) -> dict:
    result = score(metric, predicted, gold, strict=strict)
    result["loss"] = loss
    result["sentences"] = len(gold)
    return result
