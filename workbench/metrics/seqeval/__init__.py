"""The local seqeval `evaluate` module: `evaluate.load(str(MODULE_DIR))`."""

from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parent
MODULE_FILE = MODULE_DIR / "seqeval.py"
