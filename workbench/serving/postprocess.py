"""Model outputs -> per-text inferences, exactly as KServe's Hugging Face runtime shapes them.

Pure functions over CPU tensors. Each returns one inference per text of the request:

| task / mode                   | one inference                                                |
|-------------------------------|--------------------------------------------------------------|
| token cls, default            | [[id, ... S ids]]  (a 1 x S list, special and padding included)|
| token cls, probabilities      | S dicts {label_id: p rounded to 4 places}                     |
| token cls, logits             | S dicts {label_id: logit}                                     |
| seq cls, default              | id                                                            |
| seq cls, probabilities/logits | {label_id: value}                                             |
| fill mask, default            | the argmax tokens at the mask positions, decoded              |
| fill mask, probabilities      | per mask, a V-long list of {token_id: "p"} (4-place strings)  |
| fill mask, logits             | per mask, a V-long list of {token_id: logit}                  |
| text embedding (any mode)     | D floats: the mean-pooled, L2-normalised vector (runner)     |

Softmax runs in the logits' own dtype, as KServe's does, so bf16/fp16 answers match it too.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from workbench.tasks import TEXT_EMBEDDING, Mode


def _rounded_dict(values: Sequence[float]) -> dict[int, float]:
    # round(x, 4) is correctly rounded, identical to KServe's float(f"{x:.4f}")
    return {j: round(v, 4) for j, v in enumerate(values)}


def _plain_dict(values: Sequence[float]) -> dict[int, float]:
    return dict(enumerate(values))


def token_classification(logits: torch.Tensor, mode: Mode) -> list:
    """logits: [S, L] for one text (S = the request's longest length). Returns that text's inference."""
    if mode is Mode.DEFAULT:
        return [logits.argmax(dim=-1).tolist()]
    if mode is Mode.PROBABILITIES:
        return [_rounded_dict(row) for row in torch.softmax(logits, dim=-1).tolist()]
    return [_plain_dict(row) for row in logits.tolist()]


def sequence_classification(logits: torch.Tensor, mode: Mode) -> Any:
    """logits: [L] for one text."""
    if mode is Mode.DEFAULT:
        return int(logits.argmax().item())
    if mode is Mode.PROBABILITIES:
        return _rounded_dict(torch.softmax(logits, dim=-1).tolist())
    return _plain_dict(logits.tolist())


def fill_mask(logits: torch.Tensor, mode: Mode, decode: Callable[[list[int]], str]) -> Any:
    """logits: [M, V] at the text's M mask positions."""
    if mode is Mode.DEFAULT:
        return decode(logits.argmax(dim=-1).tolist())
    # KServe answers a V-long list of one-entry dicts per mask, not one V-entry dict.
    if mode is Mode.PROBABILITIES:
        return [[{j: f"{p:.4f}"} for j, p in enumerate(row)] for row in torch.softmax(logits, dim=-1).tolist()]
    return [[{j: v} for j, v in enumerate(row)] for row in logits.tolist()]


def inferences_for(task: str, mode: Mode, outputs: Sequence[torch.Tensor],
                   decode: Callable[[list[int]], str] | None = None) -> list:
    """One inference per text, from the per-text model outputs the batching queue returns."""
    if task == "token_classification":
        return [token_classification(out, mode) for out in outputs]
    if task == "sequence_classification":
        return [sequence_classification(out, mode) for out in outputs]
    if task == "fill_mask":
        assert decode is not None
        return [fill_mask(out, mode, decode) for out in outputs]
    if task == TEXT_EMBEDDING:
        return torch.stack(list(outputs)).tolist() if outputs else []
    raise ValueError(f"unknown task {task!r}")
