"""The built-in predictor: KServe V1 and Open Inference Protocol (V2) for encoder models.

Modules, one job each:
- args:        the command line (KServe's Hugging Face runtime flags plus batching limits)
- tasks:       which task a model serves, and which output mode
- errors:      request errors that map to HTTP status codes
- protocol_v1: parse V1 requests, build V1 responses (pure)
- protocol_v2: parse/validate Open Inference requests, build V2 responses, binary extension (pure)
- postprocess: model outputs -> KServe's per-text inferences (pure)
- batching:    token-budget batch planning (pure) and the async batching queue
- runner:      the model and tokenizer on their device: tokenize, pad, forward
- app:         the HTTP routes (Starlette)
- server:      `workbench serve`: load, then run uvicorn
"""
