"""Document context (`--document_context`): pure functions that pick and label a sentence's window.

Each sentence is encoded together with its neighbours from the same document (a CoNLL `-DOCSTART-`
block), added one at a time on the left and on the right while the window's sub-tokens fit the
model's `--max_length`; only the target sentence's words carry labels (-100 on the context's), so
the loss and the scores are over the same words as without context. A sentence without a document
(JSON lines, most hub datasets) gets no context.
"""

from __future__ import annotations

from typing import Sequence

from workbench.ner.align import IGNORE_INDEX


def document_order(documents: Sequence[str], positions: Sequence[int]) -> list[list[int]]:
    """Indices of the sentences grouped by document, each group in document order.

    An empty document name means "no document": such a sentence is a group of its own.
    """
    groups: dict[str, list[int]] = {}
    alone: list[list[int]] = []
    for index, document in enumerate(documents):
        if document:
            groups.setdefault(document, []).append(index)
        else:
            alone.append([index])
    ordered = [sorted(group, key=lambda i: positions[i]) for group in groups.values()]
    return ordered + alone


def context_window(lengths: Sequence[int], target: int, budget: int) -> tuple[int, int]:
    """[start, end) of the sentences around `target` whose sub-token lengths together fit `budget`.

    The target is always in; neighbours are added alternately left then right, each side stopping at
    the first sentence that does not fit (no sentence is skipped, so the window is contiguous).
    """
    start, end = target, target + 1
    used = lengths[target]
    while True:
        grew = False
        if start > 0 and used + lengths[start - 1] <= budget:
            start -= 1
            used += lengths[start]
            grew = True
        if end < len(lengths) and used + lengths[end] <= budget:
            used += lengths[end]
            end += 1
            grew = True
        if not grew:
            return start, end


def window_labels(sentence_labels: Sequence[Sequence[int]], target: int) -> list[int]:
    """Word labels of a window's sentences, concatenated: the target's own, -100 on every context word."""
    labels: list[int] = []
    for index, own in enumerate(sentence_labels):
        labels += list(own) if index == target else [IGNORE_INDEX] * len(own)
    return labels


def target_offset(words_per_sentence: Sequence[int], target: int) -> int:
    """Index of the target's first word among the window's words."""
    return sum(words_per_sentence[:target])


def cut_target_words(num_words: int, offset: int, word_ids: Sequence[int | None]) -> int:
    """How many of the target's words (offset .. offset + num_words - 1) have no sub-token left."""
    kept = {w for w in word_ids if w is not None and offset <= w < offset + num_words}
    return num_words - len(kept)
