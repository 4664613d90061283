"""The project's own small NER sample, in CoNLL format (IOB2, PER/ORG/LOC/MISC).

Every sentence is made here from templates and name lists written for this project (no newswire
text), deterministically from a seed, so `workbench train` with no data argument needs nothing
from outside. Large enough that a tiny model and MiniLM learn something in a few epochs.
"""

from __future__ import annotations

import random
from pathlib import Path

from workbench.ner.conll import Sentence, write_conll

PEOPLE = [
    "Lisa", "John", "Mary", "Peter", "Anna", "Paul", "Maria", "George", "David", "Sarah", "James", "Emma",
    "Tom", "Alice", "Bob", "Lisa Moreau", "John Carter", "Anna Weber", "Paul Okafor", "Maria Rossi",
    "George Tanaka", "Sarah Lindqvist", "James O'Neill", "Emma Dubois", "Tom Becker", "Alice Novak",
    "Ravi Menon", "Ines Duarte", "Kofi Mensah", "Yuki Sato", "Lena Horvath", "Omar Haddad",
]
PLACES = [
    "Paris", "Berlin", "London", "France", "Germany", "England", "Spain", "Italy", "Europe", "America",
    "China", "Japan", "India", "New York", "Lisbon", "Nairobi", "Osaka", "Lake Geneva", "Rio de Janeiro",
    "Cape Town", "Hamburg", "Lyon", "Toronto", "Seoul", "Mount Kenya", "North Sea",
]
ORGANISATIONS = [
    "Northwind Trading", "Blue River Bank", "City Hospital", "Harbor Analytics", "Green Valley School",
    "Atlas Motors", "Redwood Labs", "Paris University", "Berlin Football Club", "Orion Airlines",
    "Silverline Media", "Maple Insurance", "Kestrel Software", "United Grain Company", "Lumen Energy",
    "Sunrise Foods", "Iron Bridge Partners", "National Bank", "Coastal Railways", "Nova Pharma",
]
MISCELLANEOUS = [
    "French", "German", "English", "Spanish", "Italian", "Japanese", "Chinese", "Indian", "European",
    "American", "World Cup", "Olympic Games", "Euro", "Nobel Prize", "Summer Festival", "Python",
    "Champions League", "Portuguese", "Kenyan", "Korean",
]

# {PER} person, {LOC} place, {ORG} organisation, {MISC} other names (nationalities, events, ...).
TEMPLATES = [
    "My name is {PER} and I live in {LOC} .",
    "{PER} works for {ORG} in {LOC} .",
    "{ORG} opened a new office in {LOC} on Monday .",
    "{PER} said the {MISC} market was very good this year .",
    "The {MISC} team won the match against {LOC} .",
    "{PER} and {PER} visited {LOC} last week .",
    "{ORG} reported a profit of two million .",
    "Shares of {ORG} fell after the report from {LOC} .",
    "{PER} , a {MISC} writer , moved to {LOC} in the summer .",
    "The president of {ORG} is {PER} .",
    "{PER} played for {ORG} before going to {LOC} .",
    "I met {PER} at the {MISC} in {LOC} .",
    "{LOC} and {LOC} signed a new trade deal .",
    "{ORG} will build a factory near {LOC} .",
    "{PER} told reporters that {ORG} would hire more people .",
    "The {MISC} government said prices will go down .",
    "{PER} is the new coach of {ORG} .",
    "Tourists from {LOC} like the food in {LOC} .",
    "{ORG} and {ORG} agreed to work together .",
    "Yesterday {PER} flew from {LOC} to {LOC} .",
    "The river runs through {LOC} .",
    "{PER} won the {MISC} after a long game .",
    "We will watch the {MISC} in {LOC} next year .",
    "{PER} studied at {ORG} .",
    "A {MISC} company bought {ORG} for one billion .",
    "{PER} lives with her dog in {LOC} .",
    "The weather was cold and the streets were quiet .",
    "Nobody knew what would happen next .",
    "{ORG} said on Friday that {PER} will lead the team .",
    "Hello , my friend {PER} is from {LOC} .",
]

SLOTS = {"PER": PEOPLE, "LOC": PLACES, "ORG": ORGANISATIONS, "MISC": MISCELLANEOUS}


def make_sentence(template: str, rng: random.Random) -> Sentence:
    tokens: list[str] = []
    tags: list[str] = []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            kind = piece[1:-1]
            words = rng.choice(SLOTS[kind]).split()
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        else:
            tokens.append(piece)
            tags.append("O")
    return Sentence(tokens, tags)


def sample_sentences(count: int, seed: int) -> list[Sentence]:
    rng = random.Random(seed)
    return [make_sentence(TEMPLATES[i % len(TEMPLATES)], rng) for i in range(count)]


def write_sample(directory: str | Path, train_sentences: int = 600, validation_sentences: int = 150) -> dict[str, Path]:
    """Write `train.txt` and `validation.txt` (CoNLL, IOB2) into `directory`; return their paths."""
    directory = Path(directory)
    train = write_conll(sample_sentences(train_sentences, seed=13), directory / "train.txt")
    validation = write_conll(sample_sentences(validation_sentences, seed=29), directory / "validation.txt")
    return {"train": train, "validation": validation}
