"""Fine-tune an encoder for NER: `python train/ner.py ...` or `accelerate launch train/ner.py ...`.

A thin entry point; the work is in `workbench.ner` (see docs/training.md, or run with --help).
"""

import sys
from pathlib import Path

try:
    from workbench.ner.train import main
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from workbench.ner.train import main

if __name__ == "__main__":
    raise SystemExit(main())
