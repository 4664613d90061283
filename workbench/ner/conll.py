"""Read NER data: CoNLL column files and JSON lines, into sentences of words and string tags.

CoNLL format: one word per line, columns separated by whitespace, the NER tag in the last column;
a blank line ends a sentence; `-DOCSTART-` lines separate documents and are skipped. JSON lines:
one object per line, `{"tokens": [...], "ner_tags": [...]}` with tags as strings (or integers
when label names are given).

Tags are checked (`O`, `B-X`, `I-X`); a file written in IOB1 (an entity may start with `I-`) is
detected and converted to IOB2 (every entity starts with `B-`). Every format error names the file
and the line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence


class DataFormatError(ValueError):
    """A malformed line in a data file; the message names the file and the line."""


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    source: str = field(default="", compare=False)  # "file:line" of the first word, for error messages
    # The document the sentence belongs to ("" when the format has none) and its place there: with
    # --document_context its neighbours in the same document fill the model's window.
    document: str = field(default="", compare=False)
    position: int = field(default=0, compare=False)


def check_tag(tag: str) -> str | None:
    """Return an error message for a tag that is not `O`, `B-X` or `I-X`, else None."""
    if tag == "O":
        return None
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in ("B", "I") and kind:
        return None
    return f"tag {tag!r} is not O, B-<type> or I-<type>"


def starts_chunk_with_inside(tags: Sequence[str]) -> bool:
    """True when some `I-X` begins an entity (not preceded by `B-X`/`I-X`): IOB1, not IOB2."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return True
        previous = tag
    return False


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """Convert one sentence's tags from IOB1 to IOB2: an `I-X` that begins an entity becomes `B-X`."""
    converted: list[str] = []
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        converted.append(tag)
        previous = tag
    return converted


def detect_scheme(sentences: Sequence[Sentence]) -> str:
    """"IOB1" when any sentence starts an entity with `I-`, else "IOB2"."""
    return "IOB1" if any(starts_chunk_with_inside(s.tags) for s in sentences) else "IOB2"


def to_iob2(sentences: list[Sentence]) -> tuple[list[Sentence], str]:
    """Return the sentences in IOB2 and the scheme the input was detected as."""
    scheme = detect_scheme(sentences)
    if scheme == "IOB1":
        sentences = [replace(s, tags=iob1_to_iob2(s.tags)) for s in sentences]
    return sentences, scheme


def parse_conll_lines(lines: Sequence[str], name: str) -> list[Sentence]:
    """Parse CoNLL column lines (no conversion). `name` is used in error messages."""
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = ""
    document = 0  # -DOCSTART- lines counted; sentences before the first one are document 0

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            sentences.append(Sentence(tokens, tags, start, f"{name}#{document}", len(sentences)))
        tokens, tags = [], []

    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        columns = line.split()
        if columns[0] == "-DOCSTART-":
            flush()
            document += 1
            continue
        if len(columns) < 2:
            raise DataFormatError(
                f"{name}:{number}: expected a word and a tag separated by whitespace, got {line!r}")
        problem = check_tag(columns[-1])
        if problem:
            raise DataFormatError(f"{name}:{number}: {problem} (line {line!r})")
        if not tokens:
            start = f"{name}:{number}"
        tokens.append(columns[0])
        tags.append(columns[-1])
    flush()
    return sentences


def parse_json_lines(lines: Sequence[str], name: str, label_names: Sequence[str] | None = None) -> list[Sentence]:
    """Parse JSON lines `{"tokens": [...], "ner_tags": [...]}` (no conversion)."""
    sentences: list[Sentence] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{name}:{number}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or "tokens" not in record or "ner_tags" not in record:
            raise DataFormatError(f"{where}: expected an object with \"tokens\" and \"ner_tags\"")
        tokens, tags = record["tokens"], record["ner_tags"]
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise DataFormatError(f"{where}: \"tokens\" and \"ner_tags\" must be lists of the same length")
        names: list[str] = []
        for tag in tags:
            if isinstance(tag, int) and not isinstance(tag, bool):
                if label_names is None:
                    raise DataFormatError(f"{where}: integer tag {tag} needs --label_names to name it")
                if not 0 <= tag < len(label_names):
                    raise DataFormatError(f"{where}: tag {tag} out of range for {len(label_names)} label names")
                tag = label_names[tag]
            if not isinstance(tag, str):
                raise DataFormatError(f"{where}: tag {tag!r} is neither a string nor an integer")
            problem = check_tag(tag)
            if problem:
                raise DataFormatError(f"{where}: {problem}")
            names.append(tag)
        if tokens:
            sentences.append(Sentence([str(t) for t in tokens], names, where))
    return sentences


def looks_like_json_lines(path: Path, first_line: str) -> bool:
    return path.suffix in (".json", ".jsonl") or first_line.lstrip().startswith("{")


def read_sentences(path: str | Path, label_names: Sequence[str] | None = None) -> tuple[list[Sentence], str]:
    """Read a CoNLL or JSON-lines file; return IOB2 sentences and the scheme detected in the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    first = next((line for line in lines if line.strip()), "")
    if looks_like_json_lines(path, first):
        sentences = parse_json_lines(lines, str(path), label_names)
    else:
        sentences = parse_conll_lines(lines, str(path))
    if not sentences:
        raise DataFormatError(f"{path}: no sentences found")
    return to_iob2(sentences)


def write_conll(sentences: Sequence[Sentence], path: str | Path) -> Path:
    """Write sentences as a two-column CoNLL file (word, tag), with a DOCSTART line first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = ["-DOCSTART- O", ""]
    for sentence in sentences:
        parts += [f"{token} {tag}" for token, tag in zip(sentence.tokens, sentence.tags)]
        parts.append("")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_predictions(sentences: Sequence[Sentence], predicted: Sequence[Sequence[str]], path: str | Path) -> Path:
    """Write `word gold predicted` lines per sentence (conlleval's input), blank line between sentences.

    Words cut by truncation have no prediction and are left out (they are not scored either).
    """
    path = Path(path)
    parts: list[str] = []
    for sentence, tags in zip(sentences, predicted, strict=True):
        parts += [f"{token} {gold} {tag}" for token, gold, tag in zip(sentence.tokens, sentence.tags, tags)]
        parts.append("")
    tmp = path.parent / f".{path.name}.partial"
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
