"""The workbench conformance suite: check any KServe V1 / Open Inference Protocol (V2) endpoint.

Run `pytest conformance --endpoint URL ...` from a clone, or `workbench conformance --endpoint URL ...`
from an installed package. See docs/conformance.md.
"""
