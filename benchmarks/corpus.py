"""The benchmarks' texts: CoNLL-2003 validation sentences where the shared copy is present, else the sample.

`$WORKBENCH_CONLL_DIR/valid.txt`, else `../shared/data/conll2003/valid.txt` beside the checkout (3,250
different news sentences, 1 to 124 words); without either, `workbench.bench.workload.SAMPLE_TEXTS`
(32 different CoNLL-style sentences). Never one repeated text.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def default_texts_file() -> Path | None:
    """The CoNLL-2003 validation file, or None when no copy is reachable."""
    configured = os.environ.get("WORKBENCH_CONLL_DIR")
    folder = Path(configured) if configured else (REPO.parent / "shared" / "data" / "conll2003")
    candidate = folder / "valid.txt"
    return candidate if candidate.is_file() else None


def benchmark_texts(path: str | None, count: int | None = None) -> tuple[list[str], str]:
    """(texts, where they came from): `path` if given, else the default corpus; the first `count`."""
    from workbench.bench.workload import load_texts

    source = Path(path) if path else default_texts_file()
    texts = load_texts(source)
    described = str(source) if source else "the built-in sample (workbench.bench.workload.SAMPLE_TEXTS)"
    return (texts[:count] if count else texts), described
