"""Golden expectation files (JSON) shipped with the suite; loaded by `conformance.golden`."""
