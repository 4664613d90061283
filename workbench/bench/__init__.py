"""`workbench bench`: measure throughput and latency of any KServe V1 / Open Inference Protocol V2 endpoint.

- `workload`: the texts sent (a file, or a built-in CoNLL-style sample), request bodies, token counting.
- `load`: the async load generator (fixed-concurrency workers over one HTTP client).
- `stats`: pure functions: percentiles, throughput, per-level summaries.
- `report`: the printed table, the JSON report and the PNG plot.
- `cli`: `workbench bench` itself.
"""
