"""The Kubeflow Trainer TrainJob: valid against the shipped CRD, wired to the shipped torch-distributed
runtime and to the PVC the InferenceService reads, and its command runs train/ner.py's code for real
under torchrun with the environment the runtime's torch plugin sets (2 processes, CPU)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.k8s import manifests_cli
from workbench.k8s import trainjob as tj
from workbench.k8s.examples import EXAMPLES, TRAINED_NER_PVC

REPO = Path(__file__).resolve().parents[2]


def example_job() -> dict:
    return next(d for d in EXAMPLES["trainjob-ner"].documents() if d["kind"] == "TrainJob")


def checked_in_job() -> dict:
    docs = yaml.safe_load_all((REPO / "manifests" / "trainjob-ner.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "TrainJob")


def test_the_checked_in_trainjob_is_valid_against_the_crd(kubeflow):
    job = checked_in_job()
    assert job == example_job()
    assert kubeflow["TrainJob"].errors(job) == []
    broken = copy.deepcopy(job)
    broken["spec"]["trainer"]["numNode"] = broken["spec"]["trainer"].pop("numNodes")  # a typo the API rejects
    assert any("numNode" in e for e in kubeflow["TrainJob"].errors(broken))


def test_it_refers_to_the_shipped_runtime_its_job_and_container(kubeflow):
    job, runtime = example_job(), kubeflow["runtime"]
    ref = job["spec"]["runtimeRef"]
    assert (ref["kind"], ref["name"]) == (runtime["kind"], runtime["metadata"]["name"]) == (
        "ClusterTrainingRuntime", "torch-distributed")
    assert ref["apiGroup"] == runtime["apiVersion"].split("/")[0]
    assert "torch" in runtime["spec"]["mlPolicy"]
    jobs = {j["name"]: j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    override = job["spec"]["podSpecOverrides"][0]
    assert [t["name"] for t in override["targetJobs"]] == [tj.TRAINER_JOB] and tj.TRAINER_JOB in jobs
    containers = jobs[tj.TRAINER_JOB]["template"]["spec"]["template"]["spec"]["containers"]
    assert override["containers"][0]["name"] in {c["name"] for c in containers}


def test_the_model_lands_where_the_inference_service_reads_it():
    job = example_job()
    args = job["spec"]["trainer"]["args"]
    override = job["spec"]["podSpecOverrides"][0]
    mounts = {v["mountPath"]: v["name"] for v in override["containers"][0]["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in override["volumes"]}
    output_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--output_dir="))
    mount, _, path = output_dir.rpartition("/")
    assert f"pvc://{claims[mounts[mount]]}/{path}" == TRAINED_NER_PVC
    isvc = next(d for d in EXAMPLES["trained-ner-pvc"].documents() if d["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == TRAINED_NER_PVC
    for option in ("--train_file=", "--validation_file="):
        data_file = next(a.split("=", 1)[1] for a in args if a.startswith(option))
        assert mounts[tj.DATA_DIR] == "data" and data_file.startswith(tj.DATA_DIR + "/")
    data_volume = next(v for v in override["volumes"] if v["name"] == "data")
    assert data_volume["persistentVolumeClaim"]["readOnly"] is True


def test_the_args_are_train_ner_flags():
    from workbench.ner.train import build_parser

    job = example_job()
    assert job["spec"]["trainer"]["command"] == ["torchrun", "-m", "workbench.ner.train"]
    parsed = build_parser().parse_args(job["spec"]["trainer"]["args"])
    assert parsed.learning_rate == 1e-4 and parsed.num_train_epochs == 3 and parsed.checkpointing_steps == "epoch"


def test_cli_builds_n_nodes_by_m_processes(capsys, kubeflow):
    assert manifests_cli.main(["--trainjob", "ner-big", "--nodes", "4", "--procs-per-node", "8", "--gpu", "8",
                               "--namespace", "ml", "--train-arg=--num_train_epochs=5",
                               "--image", "ghcr.io/me/workbench:1-gpu"]) == 0
    job = yaml.safe_load(capsys.readouterr().out)
    assert kubeflow["TrainJob"].errors(job) == []
    trainer = job["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["args"][-1] == "--num_train_epochs=5" and trainer["image"] == "ghcr.io/me/workbench:1-gpu"
    assert job["metadata"] == {"name": "ner-big", "namespace": "ml"}
    assert {"name": "OMP_NUM_THREADS", "value": "1"} not in trainer["env"]  # GPU processes keep their threads


@pytest.mark.parametrize("argv, message", [
    (["--trainjob", "Bad_Name"], "not a valid Kubernetes name"),
    (["--trainjob", "x", "--procs-per-node", "2", "--gpu", "1"], "one process per GPU"),
    (["--trainjob", "x", "--nodes", "0"], "must be 1 or more"),
    (["--trainjob", "x", "--train-file", "/abs/train.txt"], "inside the claim"),
    (["--trainjob", "x", "--train-arg=--no_such_flag"], "does not accept --no_such_flag"),
])
def test_cli_trainjob_errors(argv, message, capsys):
    assert manifests_cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_trainjob_command_trains_with_two_processes_under_the_runtime_environment(tiny_models, tmp_path):
    """The container's command and args, with the mounts pointed at local directories and PET_* set as
    the torch plugin sets them for one node x 2 processes: one 2-process group trains and saves."""
    from workbench.ner.sample import write_sample
    from workbench.testsupport.servers import free_port

    data = tmp_path / "data"
    write_sample(data / "conll2003")
    (data / "conll2003" / "validation.txt").rename(data / "conll2003" / "valid.txt")
    models = tmp_path / "models"
    job = tj.train_job(tj.TrainJobOptions(name="local", procs_per_node=2, base_model=tiny_models("token_classification"),
                                          training_args=("--max_train_steps=2", "--max_eval_samples=20",
                                                         "--disable_tqdm")))
    trainer = job["spec"]["trainer"]
    local = {tj.DATA_DIR: str(data), "/mnt/models": str(models)}
    args = [arg.replace(tj.DATA_DIR, local[tj.DATA_DIR]).replace("/mnt/models", local["/mnt/models"])
            for arg in trainer["args"]]
    env = dict(os.environ, PET_NNODES=str(trainer["numNodes"]), PET_NPROC_PER_NODE=str(trainer["numProcPerNode"]),
               PET_NODE_RANK="0", PET_MASTER_ADDR="127.0.0.1", PET_MASTER_PORT=str(free_port()),
               HF_HUB_OFFLINE="1", **{e["name"]: e["value"] for e in trainer["env"]})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    command = [sys.executable, "-m", "torch.distributed.run", *trainer["command"][1:]]
    done = subprocess.run(command + args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((models / "ner" / "results.json").read_text())
    assert results["num_processes"] == 2 and (models / "ner" / "model.safetensors").is_file()
