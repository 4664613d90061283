import json

import pytest

from workbench.ner.conll import (
    DataFormatError,
    Sentence,
    detect_scheme,
    iob1_to_iob2,
    read_sentences,
    write_conll,
)

# The project's own sentences in CoNLL-2003's four-column layout (never the Reuters text itself).
DOCSTART = "-DOCSTART- -X- -X- O"
IOB2_TEXT = f"""{DOCSTART}

Acme NNP B-NP B-ORG
hires VBZ B-VP O
French JJ B-NP B-MISC
cooks NNS I-NP O
. . O O

Maria NNP B-NP B-PER
Lopez NNP I-NP I-PER

{DOCSTART}

LISBON NNP B-NP B-LOC
"""

IOB1_TEXT = """Peter I-PER
Lopez I-PER
visited O
New I-LOC
York I-LOC
and O
Anna I-PER
Lisa B-PER
"""


def test_reads_columns_docstart_and_blank_lines(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(IOB2_TEXT)
    sentences, scheme = read_sentences(path)
    assert scheme == "IOB2"
    assert [s.tokens for s in sentences] == [["Acme", "hires", "French", "cooks", "."], ["Maria", "Lopez"],
                                             ["LISBON"]]
    assert sentences[0].tags == ["B-ORG", "O", "B-MISC", "O", "O"]
    assert sentences[1].tags == ["B-PER", "I-PER"]
    assert sentences[0].source == f"{path}:3"


def test_iob1_is_detected_and_converted(tmp_path):
    path = tmp_path / "iob1.txt"
    path.write_text(IOB1_TEXT)
    sentences, scheme = read_sentences(path)
    assert scheme == "IOB1"
    # In IOB1 a B- only separates two adjacent entities of the same type: it stays B- in IOB2.
    assert sentences[0].tags == ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O", "B-PER", "B-PER"]


def test_iob1_to_iob2_pure():
    assert iob1_to_iob2(["I-ORG", "I-ORG", "I-LOC", "O", "I-MISC"]) == ["B-ORG", "I-ORG", "B-LOC", "O", "B-MISC"]
    assert detect_scheme([Sentence(["a", "b"], ["B-PER", "I-PER"])]) == "IOB2"
    assert detect_scheme([Sentence(["a"], ["I-PER"])]) == "IOB1"


def test_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU B-ORG\nrejects O\n\nlonely\n")
    with pytest.raises(DataFormatError, match=rf"{path}:4: expected a word and a tag"):
        read_sentences(path)


def test_bad_tag_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU B-ORG\nrejects X-FOO\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: tag 'X-FOO'"):
        read_sentences(path)


def test_json_lines_with_string_and_integer_tags(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"tokens": ["Lisa", "lives", "in", "Paris"], "ner_tags": ["B-PER", "O", "O", "B-LOC"]})
                    + "\n\n" + json.dumps({"tokens": ["Hi", "Tom"], "ner_tags": [0, 1]}) + "\n")
    sentences, scheme = read_sentences(path, label_names=["O", "B-PER", "I-PER"])
    assert scheme == "IOB2"
    assert sentences[0].tags == ["B-PER", "O", "O", "B-LOC"]
    assert sentences[1].tags == ["O", "B-PER"]
    assert sentences[1].source == f"{path}:3"


def test_json_lines_errors_name_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"tokens": ["a"], "ner_tags": ["O"]}) + "\n" +
                    json.dumps({"tokens": ["a", "b"], "ner_tags": ["O"]}) + "\n")
    with pytest.raises(DataFormatError, match=rf"{path}:2: .*same length"):
        read_sentences(path)
    path.write_text('{"tokens": ["a"], "ner_tags": [3]}\n')
    with pytest.raises(DataFormatError, match=rf"{path}:1: integer tag 3 needs --label_names"):
        read_sentences(path)
    path.write_text('{"tokens": ["a"], "ner_tags": ["O"]\n')
    with pytest.raises(DataFormatError, match=rf"{path}:1: not valid JSON"):
        read_sentences(path)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sentences(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("-DOCSTART- O\n\n")
    with pytest.raises(DataFormatError, match="no sentences"):
        read_sentences(tmp_path / "empty.txt")


def test_write_conll_round_trip(tmp_path):
    sentences = [Sentence(["Lisa", "lives", "in", "New", "York"], ["B-PER", "O", "O", "B-LOC", "I-LOC"])]
    path = write_conll(sentences, tmp_path / "out.txt")
    again, scheme = read_sentences(path)
    assert again == sentences and scheme == "IOB2"


def test_project_sample_is_iob2_with_every_entity_type(tmp_path):
    from workbench.ner.sample import write_sample

    paths = write_sample(tmp_path)
    sentences, scheme = read_sentences(paths["train"])
    assert scheme == "IOB2" and len(sentences) >= 500
    kinds = {tag[2:] for s in sentences for tag in s.tags if tag != "O"}
    assert kinds == {"PER", "ORG", "LOC", "MISC"}


def test_reads_the_shared_conll2003_files(conll2003):
    train, scheme = read_sentences(conll2003 / "train.txt")
    assert scheme == "IOB2"
    assert len(train) == 14041
    assert train[0].tokens == ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]
