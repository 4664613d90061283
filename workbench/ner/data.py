"""Turn sentences into model inputs and batches.

- `encode_sentences`: tokenize pre-split words once, align labels, count truncated words.
- `LengthGroupedBatchSampler`: shuffled batches of similar length (little padding), reproducible
  per epoch from the seed so a resumed run sees exactly the same batches.
- `SortedBatchSampler`: evaluation batches sorted by length (order does not change the metrics).
- `make_collator`: `DataCollatorForTokenClassification`, labels padded with -100.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterator, Sequence

from torch.utils.data import Dataset, Sampler

from workbench.ner.align import align_labels_with_tokens, count_truncated_words
from workbench.ner.conll import Sentence


@dataclass
class EncodingReport:
    sentences: int = 0
    truncated_sentences: int = 0
    truncated_words: int = 0
    tokens: int = 0

    def describe(self, name: str) -> str:
        text = f"{name}: {self.sentences} sentences, {self.tokens} sub-tokens"
        if self.truncated_words:
            text += (f"; truncation cut {self.truncated_words} words from {self.truncated_sentences} sentences "
                     "(raise --max_length to keep them; cut words are not trained on or scored)")
        return text


class EncodedDataset(Dataset):
    """A list of feature dicts (`input_ids`, `attention_mask`, ..., `labels`)."""

    def __init__(self, features: list[dict]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return self.features[index]

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]


def encode_sentences(
    sentences: Sequence[Sentence],
    tokenizer,
    label2id: dict[str, int],
    continuation: Sequence[int],
    *,
    max_length: int,
    first_subtoken_only: bool,
    chunk_size: int = 2000,
) -> tuple[EncodedDataset, EncodingReport]:
    """Tokenize sentences (already split into words) and align their labels to sub-tokens."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a fast tokenizer is required (word_ids() maps sub-tokens to words)")
    report = EncodingReport()
    features: list[dict] = []
    for start in range(0, len(sentences), chunk_size):
        chunk = sentences[start:start + chunk_size]
        encoding = tokenizer([s.tokens for s in chunk], is_split_into_words=True, truncation=True,
                             max_length=max_length)
        for i, sentence in enumerate(chunk):
            word_ids = encoding.word_ids(i)
            label_ids = [label2id[tag] for tag in sentence.tags]
            feature = {key: encoding[key][i] for key in encoding.keys()}
            feature["labels"] = align_labels_with_tokens(label_ids, word_ids, continuation, first_subtoken_only)
            features.append(feature)
            cut = count_truncated_words(len(sentence.tokens), word_ids)
            report.sentences += 1
            report.tokens += len(word_ids)
            if cut:
                report.truncated_sentences += 1
                report.truncated_words += cut
    return EncodedDataset(features), report


def context_windows(sentences: Sequence[Sentence], lengths: Sequence[int], budget: int) -> list[tuple[list[int], int]]:
    """Per sentence: the indices of its window's sentences (document order) and the target's place in it."""
    from workbench.ner.context import context_window, document_order

    windows: list[tuple[list[int], int]] = [([i], 0) for i in range(len(sentences))]
    for group in document_order([s.document for s in sentences], [s.position for s in sentences]):
        group_lengths = [lengths[i] for i in group]
        for k, index in enumerate(group):
            start, end = context_window(group_lengths, k, budget)
            windows[index] = (group[start:end], k - start)
    return windows


def encode_with_document_context(
    sentences: Sequence[Sentence],
    tokenizer,
    label2id: dict[str, int],
    continuation: Sequence[int],
    *,
    max_length: int,
    first_subtoken_only: bool,
    chunk_size: int = 1000,
) -> tuple[EncodedDataset, EncodingReport]:
    """As `encode_sentences`, each sentence with its document's neighbours filling the window (labels
    on the target's words only; workbench/ner/context.py). One feature per sentence, in the same order."""
    from workbench.ner.context import cut_target_words, target_offset, window_labels

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a fast tokenizer is required (word_ids() maps sub-tokens to words)")
    lengths: list[int] = []
    for start in range(0, len(sentences), chunk_size):
        alone = tokenizer([s.tokens for s in sentences[start:start + chunk_size]], is_split_into_words=True,
                          add_special_tokens=False)
        lengths += [len(ids) for ids in alone["input_ids"]]
    windows = context_windows(sentences, lengths, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    report = EncodingReport()
    features: list[dict] = []
    for start in range(0, len(sentences), chunk_size):
        chunk = windows[start:start + chunk_size]
        words = [[w for i in members for w in sentences[i].tokens] for members, _ in chunk]
        encoding = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        for k, (members, target) in enumerate(chunk):
            word_ids = encoding.word_ids(k)
            own = [[label2id[tag] for tag in sentences[i].tags] for i in members]
            feature = {key: encoding[key][k] for key in encoding.keys()}
            feature["labels"] = align_labels_with_tokens(window_labels(own, target), word_ids, continuation,
                                                         first_subtoken_only)
            features.append(feature)
            offset = target_offset([len(sentences[i].tokens) for i in members], target)
            cut = cut_target_words(len(sentences[members[target]].tokens), offset, word_ids)
            report.sentences += 1
            report.tokens += len(word_ids)
            if cut:
                report.truncated_sentences += 1
                report.truncated_words += cut
    return EncodedDataset(features), report


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Random batches of indices whose lengths are close.

    Each epoch: shuffle all indices (seeded by seed + epoch), cut them into mega-batches of
    `batch_size * group_factor`, sort each mega-batch by length, cut it into batches, and shuffle
    the batches. Padding shrinks to almost nothing while batches stay random.
    With `group_by_length=False`: plain shuffled batches (same seeding).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, group_factor: int = 50,
                 group_by_length: bool = True):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_factor = group_factor
        self.group_by_length = group_by_length
        self.drop_last = False
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        indices = list(range(len(self.lengths)))
        rng.shuffle(indices)
        if not self.group_by_length:  # plain shuffled batches, still reproducible per epoch
            return [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        mega = self.batch_size * self.group_factor
        batches: list[list[int]] = []
        for start in range(0, len(indices), mega):
            group = sorted(indices[start:start + mega], key=lambda i: self.lengths[i], reverse=True)
            batches += [group[i:i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        rng.shuffle(batches)
        return last_short_batch_last(batches, self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches(self.epoch))

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


def last_short_batch_last(batches: list[list[int]], batch_size: int) -> list[list[int]]:
    """The one batch shorter than `batch_size` (if any) moved to the end.

    Accelerate's sharding across processes (`BatchSamplerShard`) hands out full batches in turn and
    fills a short batch from the start only when it comes last; anywhere else it would skip it.
    """
    full = [b for b in batches if len(b) == batch_size]
    return full + [b for b in batches if len(b) != batch_size]


class SortedBatchSampler(Sampler[list[int]]):
    """Batches of indices sorted by length (longest first), the same every time: for evaluation.

    `batch_size` is an attribute so that Accelerate shards it across processes with even batches
    and `gather_for_metrics` can drop the duplicates that fill the last one; `order` maps the
    position of a sentence in the batches back to its index in the data.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int):
        self.batch_size = batch_size
        self.drop_last = False
        self.order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
        self._batches = [self.order[i:i + batch_size] for i in range(0, len(self.order), batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


def make_collator(tokenizer, pad_to_multiple_of: int | None = None):
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer=tokenizer, pad_to_multiple_of=pad_to_multiple_of)


def load_hub_splits(dataset_name: str, config_name: str | None = None) -> tuple[dict[str, list[Sentence]], list[str] | None]:
    """Load a hub dataset with `tokens` and `ner_tags` columns (e.g. a conll2003 mirror).

    Returns sentences per split and the label names of the `ner_tags` ClassLabel (if any).
    """
    from datasets import load_dataset

    raw = load_dataset(dataset_name, config_name)
    splits: dict[str, list[Sentence]] = {}
    names: list[str] | None = None
    for split, data in raw.items():
        if "tokens" not in data.column_names or "ner_tags" not in data.column_names:
            raise ValueError(f"{dataset_name}[{split}] needs 'tokens' and 'ner_tags' columns, has {data.column_names}")
        feature = data.features["ner_tags"]
        inner = getattr(feature, "feature", None)
        names = list(inner.names) if hasattr(inner, "names") else names
        sentences = []
        document = 0
        for row_number, row in enumerate(data):
            if list(row["tokens"]) == ["-DOCSTART-"]:  # conll2003 on the hub keeps the document markers as rows
                document += 1
                continue
            tags = [names[t] if isinstance(t, int) and names else str(t) for t in row["ner_tags"]]
            if row["tokens"]:
                sentences.append(Sentence(list(row["tokens"]), tags, f"{dataset_name}[{split}]:{row_number}",
                                          f"{dataset_name}[{split}]#{document}" if document else "",
                                          len(sentences)))
        splits[split] = sentences
    return splits, names
