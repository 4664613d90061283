"""What a local model directory lacks, said in one line before anything tries to load it."""

from __future__ import annotations

from pathlib import Path

WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model")
HOW = "save one with model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR), or train one with train/ner.py"


def model_dir_problem(model_dir: str | Path) -> str | None:
    """None when `model_dir` looks loadable, else what is missing (config.json, weights, tokenizer files)."""
    path = Path(model_dir)
    if not path.exists():
        return f"model directory {path} does not exist"
    if not path.is_dir():
        return f"--model_dir {path} is a file, not a directory"
    names = {child.name for child in path.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not names & set(WEIGHTS):
        missing.append("the weights (model.safetensors or pytorch_model.bin)")
    if not names & set(TOKENIZER):
        missing.append("the tokenizer files (tokenizer.json or vocab.txt)")
    if not missing:
        return None
    listing = ", ".join(sorted(names)[:8]) or "nothing"
    return (f"{path} is not a Hugging Face model directory: it has no {' and no '.join(missing)} "
            f"(it holds {listing}); {HOW}")
