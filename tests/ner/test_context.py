"""Document context: window choice and labels (pure functions), and the encoding built from them."""

import pytest
from transformers import BertTokenizerFast

from workbench.ner.align import IGNORE_INDEX, align_labels_with_tokens
from workbench.ner.conll import Sentence, parse_conll_lines
from workbench.ner.context import context_window, cut_target_words, document_order, target_offset, window_labels
from workbench.ner.data import context_windows, encode_sentences, encode_with_document_context
from workbench.ner.labels import CONLL2003_LABELS, continuation_ids

CONTINUATION = continuation_ids(CONLL2003_LABELS)
LABEL2ID = {label: i for i, label in enumerate(CONLL2003_LABELS)}


def test_the_window_grows_left_and_right_while_it_fits():
    assert context_window([5, 5, 5, 5, 5], 2, 15) == (1, 4)
    assert context_window([5, 5, 5, 5, 5], 2, 12) == (1, 3)  # left first; then the right one no longer fits
    assert context_window([5, 5, 5, 5, 5], 2, 100) == (0, 5)
    assert context_window([5, 5, 5], 1, 4) == (1, 2)  # the target alone, even when it does not fit
    assert context_window([10, 1, 1, 1], 1, 4) == (1, 4)  # a blocked side does not stop the other
    assert context_window([1, 9, 1, 1], 3, 3) == (2, 4)  # no sentence is skipped: contiguous


def test_documents_group_in_order_and_sentences_without_one_stay_alone():
    assert document_order(["a", "b", "a", "", "b", ""], [2, 0, 1, 0, 1, 0]) == [[2, 0], [1, 4], [3], [5]]


def test_only_the_target_words_are_labelled():
    assert window_labels([[1, 0], [3, 4, 0], [0]], 1) == [-100, -100, 3, 4, 0, -100]
    assert target_offset([2, 3, 1], 1) == 2 and target_offset([2, 3, 1], 0) == 0
    assert cut_target_words(3, 2, [None, 0, 1, 2, 3, None]) == 1
    assert cut_target_words(3, 2, [None, 2, 3, 4, 5, None]) == 0


def test_context_words_get_minus_100_on_every_sub_token():
    # words: context "lamb" (la ##mb), target "lisa" B-PER
    assert align_labels_with_tokens([IGNORE_INDEX, 1], [None, 0, 0, 1, None], CONTINUATION) == \
        [-100, -100, -100, 1, -100]


def test_docstart_starts_a_new_document():
    lines = ["-DOCSTART- O", "", "a O", "", "b B-PER", "", "-DOCSTART- O", "", "c O", ""]
    sentences = parse_conll_lines(lines, "f.txt")
    assert [(s.document, s.position) for s in sentences] == [("f.txt#1", 0), ("f.txt#1", 1), ("f.txt#2", 2)]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vocab")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "eu", "rejects", "german", "call", "to", "boycott",
             "british", "la", "##mb", ".", "lisa", "lives", "in", "paris"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)


def doc(name: str, texts: list[tuple[str, str]], start: int = 0) -> list[Sentence]:
    return [Sentence(words.split(), tags.split(), "", name, start + i) for i, (words, tags) in enumerate(texts)]


SENTENCES = (doc("d1", [("EU rejects German call", "B-ORG O B-MISC O"), ("to boycott British lamb .",
                                                                           "O O B-MISC O O"),
                        ("Lisa lives in Paris", "B-PER O O B-LOC")])
             + doc("d2", [("Paris", "B-LOC"), ("Lisa", "B-PER")], start=3))


def test_windows_stay_inside_their_document(tokenizer):
    lengths = [4, 6, 4, 1, 1]  # sub-tokens alone: "lamb" is la ##mb
    assert context_windows(SENTENCES, lengths, 100) == [([0, 1, 2], 0), ([0, 1, 2], 1), ([0, 1, 2], 2),
                                                        ([3, 4], 0), ([3, 4], 1)]
    assert context_windows(SENTENCES, lengths, 10) == [([0, 1], 0), ([0, 1], 1), ([1, 2], 1), ([3, 4], 0),
                                                       ([3, 4], 1)]


@pytest.mark.parametrize("first_subtoken_only", [True, False])
def test_encoded_windows_label_the_same_words_as_sentences_alone(tokenizer, first_subtoken_only):
    alone, _ = encode_sentences(SENTENCES, tokenizer, LABEL2ID, CONTINUATION, max_length=64,
                                first_subtoken_only=first_subtoken_only)
    windowed, report = encode_with_document_context(SENTENCES, tokenizer, LABEL2ID, CONTINUATION, max_length=64,
                                                    first_subtoken_only=first_subtoken_only)
    assert len(windowed) == len(alone) == report.sentences == 5
    for a, w in zip(alone, windowed):
        assert [x for x in w["labels"] if x != IGNORE_INDEX] == [x for x in a["labels"] if x != IGNORE_INDEX]
    # Sentence 2 ("to boycott British lamb .") with sentence 1 on its left and 3 on its right.
    tokens = tokenizer.convert_ids_to_tokens(windowed[1]["input_ids"])
    assert tokens == ["[CLS]", "eu", "rejects", "german", "call", "to", "boycott", "british", "la", "##mb", ".",
                      "lisa", "lives", "in", "paris", "[SEP]"]
    assert windowed[1]["labels"] == [-100] * 5 + [0, 0, 7, 0, 0 if not first_subtoken_only else -100, 0] + \
        [-100] * 5
    assert tokenizer.convert_ids_to_tokens(windowed[3]["input_ids"]) == ["[CLS]", "paris", "lisa", "[SEP]"]
    assert windowed[3]["labels"] == [-100, 5, -100, -100]


def test_the_window_fits_max_length_and_truncation_is_counted_on_the_target(tokenizer):
    windowed, report = encode_with_document_context(SENTENCES, tokenizer, LABEL2ID, CONTINUATION, max_length=8,
                                                    first_subtoken_only=True)
    assert all(len(f["input_ids"]) <= 8 for f in windowed)
    assert tokenizer.convert_ids_to_tokens(windowed[0]["input_ids"]) == ["[CLS]", "eu", "rejects", "german", "call",
                                                                         "[SEP]"]
    assert report.truncated_words == 0
    _, short = encode_with_document_context(SENTENCES, tokenizer, LABEL2ID, CONTINUATION, max_length=5,
                                            first_subtoken_only=True)
    assert short.truncated_words == 1 + 2 + 1  # "call", "lamb .", "paris": each target alone, cut as before
