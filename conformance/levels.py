"""The levels of the suite's checks: what a check holds the endpoint to (docs/conformance.md "Levels").

Every check declares one with `@level(...)` (conformance.checks); `--level protocol,kserve` selects.
"""

from __future__ import annotations

LEVELS = {
    "protocol": "what the KServe V1 and Open Inference Protocol (V2) documents require",
    "kserve": "what KServe's Hugging Face runtime does beyond them (input forms, output nesting and datatypes)",
    "workbench": "workbench's own extensions (Hugging Face entity route, robustness beyond the documents)",
}
