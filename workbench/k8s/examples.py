"""The checked-in manifests: KServe's documented Hugging Face deployments, plus our own.

Each example is a name (`workbench manifests --example NAME`), the file it is written to under
manifests/, a one-line summary, and the documents it holds. `workbench manifests --all` writes every one
of them, and tests/k8s checks that manifests/ is exactly that output.

Differences from KServe's documentation, on purpose:
- the raw-logit examples use `--return_raw_logits`: the documented `--disable_postprocess` and
  `--return_logits` do not exist in the runtime, which then silently answers class ids;
- the fill-mask InferenceServices are named `huggingface-bert-fill-mask`, so they do not replace the
  NER one (the documentation calls both `huggingface-bert`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from workbench.k8s import manifests as m
from workbench.k8s import trainjob as tj

# Resources of KServe's documented examples: 1 CPU, 2Gi, 1 GPU, requests equal to limits.
SEED_RESOURCES = m.Resources(cpu_request="1", memory_request="2Gi", cpu_limit="1", memory_limit="2Gi", gpu=1)

NER_MODEL = "hf://dslim/bert-base-NER"
SENTIMENT_MODEL = "hf://distilbert/distilbert-base-uncased-finetuned-sst-2-english"
FILL_MASK_MODEL = "hf://google-bert/bert-base-uncased"
EMBEDDING_MODEL = "hf://sentence-transformers/all-MiniLM-L6-v2"
TRAINED_NER_PVC = "pvc://workbench-models/ner"
TRAINED_NER_S3 = "s3://workbench-models/ner"


@dataclass(frozen=True)
class Example:
    name: str
    filename: str
    summary: str
    build: Callable[[], list[dict]]
    notes: tuple[str, ...] = ()

    def documents(self) -> list[dict]:
        return self.build()


def _hf(name: str, storage_uri: str, model_name: str, protocol: str = "v1", output: str = "default",
        disable_lower_case: bool = False, task: str | None = None) -> Callable[[], list[dict]]:
    def build() -> list[dict]:
        return [m.inference_service(m.PredictorOptions(
            name=name, storage_uri=storage_uri, model_name=model_name, protocol=protocol, output=output,
            disable_lower_case=disable_lower_case, task=task, resources=SEED_RESOURCES))]
    return build


def _trained_ner_pvc() -> list[dict]:
    return [
        m.persistent_volume_claim("workbench-models", size="5Gi"),
        m.model_copy_pod("workbench-model-copy", claim_name="workbench-models"),
        m.inference_service(m.PredictorOptions(
            name="workbench-ner", storage_uri=TRAINED_NER_PVC, model_name="ner", task="token_classification",
            protocol="v2", resources=SEED_RESOURCES)),
    ]


def _trained_ner_s3() -> list[dict]:
    return [
        m.s3_credentials_secret("workbench-s3"),
        m.service_account("workbench-s3", secret_name="workbench-s3"),
        m.inference_service(m.PredictorOptions(
            name="workbench-ner-s3", storage_uri=TRAINED_NER_S3, model_name="ner", task="token_classification",
            protocol="v2", resources=SEED_RESOURCES, service_account="workbench-s3")),
    ]


def _workbench_gpu() -> list[dict]:
    return [m.inference_service(m.PredictorOptions(
        name="workbench-bert", storage_uri=NER_MODEL, model_name="bert", runtime="workbench", protocol="v2",
        disable_lower_case=True, image=m.DEFAULT_GPU_IMAGE,
        resources=m.Resources(cpu_request="2", memory_request="4Gi", cpu_limit="4", memory_limit="8Gi", gpu=1),
        extra_args=("--max_batch_size=64", "--max_batch_delay_ms=2"),
    ))]


def _workbench_trained_gpu() -> list[dict]:
    return [m.inference_service(m.PredictorOptions(
        name="workbench-ner-gpu", storage_uri=TRAINED_NER_PVC, model_name="ner", runtime="workbench",
        protocol="v2", task="token_classification", image=m.DEFAULT_GPU_IMAGE,
        resources=m.Resources(cpu_request="2", memory_request="4Gi", cpu_limit="4", memory_limit="8Gi", gpu=1),
    ))]


# MiniLM (22M parameters) on CPU: no GPU asked for.
EMBEDDING_RESOURCES = m.Resources(cpu_request="1", memory_request="2Gi", cpu_limit="2", memory_limit="2Gi")


def _minilm_embeddings(runtime: str, name: str) -> Callable[[], list[dict]]:
    def build() -> list[dict]:
        return [m.inference_service(m.PredictorOptions(
            name=name, storage_uri=EMBEDDING_MODEL, model_name="minilm", runtime=runtime, task="text_embedding",
            resources=EMBEDDING_RESOURCES))]
    return build


_EMBEDDING_NOTE = ("Embeddings at /v1/models/minilm:predict, /v2/models/minilm/infer and the OpenAI route "
                   "/openai/v1/embeddings (model \"minilm\").")
_SEED_NOTE = "From KServe's Hugging Face runtime documentation."
_LOWER_CASE_NOTE = ("Lowercasing stays on: train/ner.py's default model (MiniLM) is uncased, and --disable_lower_case "
                    "would turn its capitalised words into [UNK]. For a cased base model add --disable_lower_case.")
TRAINJOB_RESOURCES = m.Resources(cpu_request="4", memory_request="16Gi", cpu_limit="4", memory_limit="16Gi", gpu=1)


def _trainjob_ner() -> list[dict]:
    return [
        m.persistent_volume_claim("workbench-data", size="1Gi", access_mode="ReadWriteMany"),
        m.model_copy_pod("workbench-data-copy", claim_name="workbench-data"),
        tj.train_job(tj.TrainJobOptions(name="workbench-ner-train", nodes=2, procs_per_node=1,
                                        image=m.DEFAULT_GPU_IMAGE, resources=TRAINJOB_RESOURCES)),
    ]


_RAW_NOTE = ("The documentation shows {flag}, which the runtime does not have (it would answer class ids);"
             " --return_raw_logits is the flag that works.")
_SAME_NAME_NOTE = "V1 and V2 variants share the InferenceService name: apply one of them."

EXAMPLES: dict[str, Example] = {e.name: e for e in [
    Example("bert-ner-v1", "huggingface-bert-ner-v1.yaml", "BERT NER (dslim/bert-base-NER), KServe runtime, V1",
            _hf("huggingface-bert", NER_MODEL, "bert", disable_lower_case=True), (_SEED_NOTE, _SAME_NAME_NOTE)),
    Example("bert-ner-v2", "huggingface-bert-ner-v2.yaml", "BERT NER, KServe runtime, Open Inference Protocol V2",
            _hf("huggingface-bert", NER_MODEL, "bert", "v2", disable_lower_case=True),
            (_SEED_NOTE, _SAME_NAME_NOTE)),
    Example("bert-ner-probabilities", "huggingface-bert-ner-probabilities.yaml",
            "BERT NER, V2, per-token probabilities (--return_probabilities)",
            _hf("huggingface-bert-with-probs", NER_MODEL, "bert", "v2", "probabilities", disable_lower_case=True),
            (_SEED_NOTE,)),
    Example("distilbert-sentiment-v1", "huggingface-distilbert-v1.yaml",
            "distilBERT SST-2 sentiment, KServe runtime, V1",
            _hf("huggingface-distilbert", SENTIMENT_MODEL, "distilbert"), (_SEED_NOTE, _SAME_NAME_NOTE)),
    Example("distilbert-sentiment-v2", "huggingface-distilbert-v2.yaml",
            "distilBERT SST-2 sentiment, KServe runtime, V2",
            _hf("huggingface-distilbert", SENTIMENT_MODEL, "distilbert", "v2"), (_SEED_NOTE, _SAME_NAME_NOTE)),
    Example("distilbert-sentiment-probabilities", "huggingface-distilbert-probabilities.yaml",
            "distilBERT sentiment, V2, class probabilities",
            _hf("huggingface-distilbert-probs", SENTIMENT_MODEL, "distilbert", "v2", "probabilities"),
            (_SEED_NOTE,)),
    Example("distilbert-sentiment-raw-logits", "huggingface-distilbert-raw-logits.yaml",
            "distilBERT sentiment, V2, raw logits (--return_raw_logits)",
            _hf("huggingface-distilbert-raw", SENTIMENT_MODEL, "distilbert", "v2", "raw_logits"),
            (_SEED_NOTE, _RAW_NOTE.format(flag="--disable_postprocess"))),
    Example("bert-fill-mask-v1", "huggingface-bert-fill-mask-v1.yaml",
            "BERT fill-mask (google-bert/bert-base-uncased), KServe runtime, V1",
            _hf("huggingface-bert-fill-mask", FILL_MASK_MODEL, "bert"),
            (_SEED_NOTE, "Named huggingface-bert-fill-mask so it does not replace the NER service.",
             _SAME_NAME_NOTE)),
    Example("bert-fill-mask-v2", "huggingface-bert-fill-mask-v2.yaml", "BERT fill-mask, KServe runtime, V2",
            _hf("huggingface-bert-fill-mask", FILL_MASK_MODEL, "bert", "v2"),
            (_SEED_NOTE, "Named huggingface-bert-fill-mask so it does not replace the NER service.",
             _SAME_NAME_NOTE)),
    Example("bert-fill-mask-probabilities", "huggingface-bert-fill-mask-probabilities.yaml",
            "BERT fill-mask, V2, vocabulary probabilities at each mask",
            _hf("huggingface-bert-probs", FILL_MASK_MODEL, "bert", "v2", "probabilities"), (_SEED_NOTE,)),
    Example("bert-fill-mask-raw-logits", "huggingface-bert-fill-mask-raw-logits.yaml",
            "BERT fill-mask, V2, raw logits at each mask (--return_raw_logits)",
            _hf("huggingface-bert-logits", FILL_MASK_MODEL, "bert", "v2", "raw_logits"),
            (_SEED_NOTE, _RAW_NOTE.format(flag="--return_logits"))),
    Example("minilm-embeddings", "huggingface-minilm-embeddings.yaml",
            "all-MiniLM-L6-v2 text embeddings (mean pooling, L2 norm), KServe runtime, on CPU",
            _minilm_embeddings("huggingface", "huggingface-minilm"),
            (_EMBEDDING_NOTE, "--task=text_embedding is required: KServe's runtime cannot infer it from BertModel.")),
    Example("workbench-minilm-embeddings", "workbench-minilm-embeddings.yaml",
            "all-MiniLM-L6-v2 text embeddings with the workbench predictor, on CPU",
            _minilm_embeddings("workbench", "workbench-minilm"),
            (_EMBEDDING_NOTE, "Build and push the image first (docs/deploy.md); registry.example.com is a placeholder.")),
    Example("hf-storage-container", "hf-storage-container.yaml",
            "ClusterStorageContainer for hf:// URIs, with HF_TOKEN from the hf-secret Secret",
            lambda: [m.hf_storage_container()],
            ("Needed only for private or gated hub models; public ones download without it.",
             "If another ClusterStorageContainer also claims hf://, KServe may pick either: keep one.")),
    Example("hf-token-secret", "hf-token-secret.yaml", "Secret hf-secret holding HF_TOKEN (placeholder value)",
            lambda: [m.hf_token_secret()],
            ("Replace the placeholder, or create it without a file:",
             "kubectl create secret generic hf-secret --from-literal=HF_TOKEN=hf_...")),
    Example("trained-ner-pvc", "trained-ner-pvc.yaml",
            "The model from train/ner.py on a PVC, KServe runtime (PVC + copy pod + InferenceService)",
            _trained_ner_pvc,
            ("Copy the training output directory into the claim, then delete the copy pod:",
             "kubectl cp ner-model workbench-model-copy:/mnt/models/ner  (ner-model: train/ner.py --output_dir)",
             _LOWER_CASE_NOTE)),
    Example("trained-ner-s3", "trained-ner-s3.yaml",
            "The model from train/ner.py in an S3 bucket, KServe runtime (Secret + ServiceAccount + InferenceService)",
            _trained_ner_s3,
            ("Upload first: aws s3 cp --recursive ner-model s3://workbench-models/ner", _LOWER_CASE_NOTE,
             "Replace the placeholder credentials, endpoint and region in the Secret.")),
    Example("workbench-predictor-gpu", "workbench-predictor-gpu.yaml",
            "The workbench predictor image as a custom container on 1 GPU, serving dslim/bert-base-NER",
            _workbench_gpu,
            ("Build and push the image first (docs/deploy.md); registry.example.com is a placeholder.",
             "Same routes and outputs as the KServe runtime, plus dynamic batching and /metrics.")),
    Example("workbench-trained-ner-gpu", "workbench-trained-ner-gpu.yaml",
            "The workbench predictor on 1 GPU serving the model from train/ner.py on the PVC",
            _workbench_trained_gpu,
            ("Uses the workbench-models PVC from trained-ner-pvc.yaml.", _LOWER_CASE_NOTE)),
    Example("trainjob-ner", "trainjob-ner.yaml",
            "Kubeflow Trainer TrainJob: train/ner.py on 2 nodes x 1 GPU (torch-distributed), model to the PVC "
            "trained-ner-pvc.yaml serves",
            _trainjob_ner,
            ("Not run here (no cluster, no GPU): validated against the TrainJob CRD only (docs/training.md).",
             "Needs Kubeflow Trainer with the torch-distributed ClusterTrainingRuntime, and the image built "
             "from the Dockerfile (--build-arg for CUDA, docs/deploy.md).",
             "Copy the CoNLL files into the data claim (the copy pod mounts it at /mnt/models), then delete the pod:",
             "kubectl cp conll2003 workbench-data-copy:/mnt/models/conll2003",
             "Every node mounts both claims: with more than one node, workbench-models (trained-ner-pvc.yaml) "
             "must be ReadWriteMany too.",
             "The base model comes from the Hugging Face Hub (sentence-transformers/all-MiniLM-L6-v2).")),
]}
