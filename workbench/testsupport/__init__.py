"""Support for tests, the conformance suite's offline run, the demo, the gate and the benchmarks.

- `servers`: start a real server (ours or any command) on a free port and wait until it is ready;
- `tiny_models`: tiny BERT models built in code for every task (never downloaded);
- `kserve_modelserver`: KServe's own `ModelServer` hosting a plain custom model that shapes answers
  like KServe's Hugging Face runtime (a foreign server to check; the real runtime is in ../shared/kserve).

Nothing in the predictor or the training code imports this package.
"""
