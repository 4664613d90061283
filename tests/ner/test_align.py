"""Label alignment, with a tokenizer whose vocabulary the test writes (so the splits are exact)."""

import pytest
from transformers import BertTokenizerFast

from workbench.ner.align import align_labels_with_tokens, count_truncated_words
from workbench.ner.conll import Sentence
from workbench.ner.data import encode_sentences
from workbench.ner.labels import CONLL2003_LABELS, continuation_ids

WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
LABELS = [3, 0, 7, 0, 0, 0, 7, 0, 0]
CONTINUATION = continuation_ids(CONLL2003_LABELS)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vocab")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "eu", "rejects", "german", "call", "to", "boycott",
             "british", "la", "##mb", ".", "brit", "##ish"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)


def test_the_course_worked_example(tokenizer):
    encoding = tokenizer(WORDS, is_split_into_words=True)
    assert encoding.tokens() == ["[CLS]", "eu", "rejects", "german", "call", "to", "boycott", "british",
                                 "la", "##mb", ".", "[SEP]"]
    aligned = align_labels_with_tokens(LABELS, encoding.word_ids(), CONTINUATION)
    assert aligned == [-100, 3, 0, 7, 0, 0, 0, 7, 0, 0, 0, -100]


def test_b_continuation_becomes_i_or_minus_100():
    word_ids = [None, 0, 0, 0, 1, 1, None]  # "Lisa" (B-PER) in three pieces, then an O word in two
    assert align_labels_with_tokens([1, 0], word_ids, CONTINUATION) == [-100, 1, 2, 2, 0, 0, -100]
    assert align_labels_with_tokens([1, 0], word_ids, CONTINUATION, first_subtoken_only=True) == \
        [-100, 1, -100, -100, 0, -100, -100]
    # I-X continuations stay I-X; padding positions (None) get -100.
    assert align_labels_with_tokens([2], [None, 0, 0, None, None], CONTINUATION) == [-100, 2, 2, -100, -100]


def test_truncation_counts_cut_words():
    assert count_truncated_words(9, [None, 0, 1, 2, None]) == 6
    assert count_truncated_words(3, [None, 0, 1, 2, None]) == 0
    assert count_truncated_words(2, [None, None]) == 2


def test_encode_reports_truncation_and_scores_first_subtokens(tokenizer):
    sentences = [Sentence(WORDS, [CONLL2003_LABELS[i] for i in LABELS])]
    label2id = {label: i for i, label in enumerate(CONLL2003_LABELS)}
    data, report = encode_sentences(sentences, tokenizer, label2id, CONTINUATION, max_length=6,
                                    first_subtoken_only=True)
    assert data[0]["labels"] == [-100, 3, 0, 7, 0, -100]  # 4 words kept of 9
    assert (report.sentences, report.truncated_sentences, report.truncated_words) == (1, 1, 5)
    assert "cut 5 words" in report.describe("train")
    full, report = encode_sentences(sentences, tokenizer, label2id, CONTINUATION, max_length=64,
                                    first_subtoken_only=True)
    assert full[0]["labels"] == [-100, 3, 0, 7, 0, 0, 0, 7, 0, -100, 0, -100]
    assert report.truncated_words == 0
