import random

import torch

from workbench.ner.data import LengthGroupedBatchSampler, SortedBatchSampler, make_collator


def padding_of(batches, lengths):
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches_cover_every_index_once_with_little_padding():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(1000)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 125
    assert sorted(i for b in batches for i in b) == list(range(1000))
    plain = list(LengthGroupedBatchSampler(lengths, batch_size=8, seed=1, group_by_length=False))
    assert sorted(i for b in plain for i in b) == list(range(1000))
    assert padding_of(batches, lengths) * 10 < padding_of(plain, lengths)


def test_batches_are_reproducible_per_epoch_and_differ_between_epochs():
    lengths = list(range(1, 200))
    a = LengthGroupedBatchSampler(lengths, batch_size=4, seed=3)
    b = LengthGroupedBatchSampler(lengths, batch_size=4, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)


def test_sorted_batches_for_evaluation():
    lengths = [5, 1, 9, 3, 7]
    assert list(SortedBatchSampler(lengths, 2)) == [[2, 4], [0, 3], [1]]


def test_collator_pads_labels_with_minus_100(tiny_models):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models("token_classification"))
    batch = make_collator(tokenizer)([
        {"input_ids": [2, 10, 3], "attention_mask": [1, 1, 1], "labels": [-100, 1, -100]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": [-100, -100]},
    ])
    assert batch["labels"].tolist() == [[-100, 1, -100], [-100, -100, -100]]
    assert batch["input_ids"].dtype == torch.long


def test_the_short_batch_comes_last_so_that_sharding_across_processes_keeps_it():
    lengths = list(range(1, 31))  # 30 sentences, batches of 4: one batch of 2
    for epoch in range(5):
        sampler = LengthGroupedBatchSampler(lengths, batch_size=4, seed=epoch, group_factor=2)
        batches = sampler.batches(epoch)
        assert [len(b) for b in batches] == [4] * 7 + [2]
        assert sorted(i for b in batches for i in b) == list(range(30))


def test_sorted_batches_know_their_size_and_the_data_order():
    sampler = SortedBatchSampler([5, 1, 9, 3, 7], 2)
    assert sampler.batch_size == 2 and sampler.order == [2, 4, 0, 3, 1]
    from workbench.ner.evaluation import in_data_order

    assert in_data_order(sampler.order, ["c", "e", "a", "d", "b"]) == ["a", "b", "c", "d", "e"]
