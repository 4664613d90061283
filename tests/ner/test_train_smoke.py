"""CI smoke run: a tiny model on the project's sample, a few steps, checkpoint, resume, save, serve.

Everything is real: the training loop runs in-process through `workbench.ner.train.main`, the
saved directory is served by `workbench serve` in a subprocess and asked over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file

from workbench.ner.labels import CONLL2003_LABELS
from workbench.ner.train import main

TEXT = "My name is Lisa and I live in Paris"


def common_args(model_dir: str) -> list[str]:
    return ["--model_name_or_path", model_dir, "--max_train_steps", "6", "--checkpointing_steps", "3",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--learning_rate", "1e-3",
            "--seed", "7", "--disable_tqdm", "--strict"]


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory):
    """Run A: 6 steps with checkpoints at 3 and 6. Run B: resumed from A's step 3, runs to 6."""
    model_dir = tiny_models("token_classification")
    run_a = tmp_path_factory.mktemp("run-a")
    run_b = tmp_path_factory.mktemp("run-b")
    assert main(common_args(model_dir) + ["--output_dir", str(run_a)]) == 0
    assert main(common_args(model_dir) + ["--output_dir", str(run_b),
                                          "--resume_from_checkpoint", str(run_a / "step_3")]) == 0
    return run_a, run_b


def load_torch(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_output_directory_is_a_complete_model(trained):
    run_a, _ = trained
    config = json.loads((run_a / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    assert [config["id2label"][str(i)] for i in range(9)] == CONLL2003_LABELS
    assert config["label2id"] == {label: i for i, label in enumerate(CONLL2003_LABELS)}
    assert (run_a / "training_curves.png").stat().st_size > 1000
    assert (run_a / "step_3").is_dir() and (run_a / "step_6").is_dir()
    assert not list(run_a.glob(".*partial*"))
    results = json.loads((run_a / "results.json").read_text())
    best = results["best"]
    assert {"epoch", "overall_f1", "overall_precision", "overall_recall", "overall_accuracy", "per_entity"} <= set(best)
    assert set(best["per_entity"]) <= {"PER", "ORG", "LOC", "MISC"}
    for scores in best["per_entity"].values():
        assert set(scores) == {"precision", "recall", "f1", "number"}
    assert "strict" in best
    assert results["tokens_per_second"] > 0 and results["sentences_per_second"] > 0
    assert results["wall_time_seconds"] > 0 and results["completed_steps"] == 6
    assert results["args"]["max_train_steps"] == 6 and len(results["epochs"]) == 1


def test_resume_continues_at_the_right_step_with_the_same_state(trained):
    run_a, run_b = trained
    results = json.loads((run_b / "results.json").read_text())
    assert results["completed_steps"] == 6
    assert not (run_b / "step_3").exists()  # resumed after step 3: the next checkpoint is step 6
    state_b = json.loads((run_b / "step_6" / "trainer_state.json").read_text())
    state_a = json.loads((run_a / "step_6" / "trainer_state.json").read_text())
    assert state_b["resumed_from"] == str(run_a / "step_3")
    assert (state_b["completed_steps"], state_b["batches_done_in_epoch"]) == (6, 6)
    assert state_b["train_sentences"] == state_a["train_sentences"]  # the same batches were seen
    # Optimizer and scheduler state after step 6 match the uninterrupted run, and so do the weights.
    assert_same(load_torch(run_a / "step_6" / "optimizer.bin"), load_torch(run_b / "step_6" / "optimizer.bin"),
                "optimizer")
    assert_same(load_torch(run_a / "step_6" / "scheduler.bin"), load_torch(run_b / "step_6" / "scheduler.bin"),
                "scheduler")
    assert load_torch(run_b / "step_6" / "scheduler.bin")["last_epoch"] == 6
    assert_same(load_file(run_a / "step_6" / "model.safetensors"), load_file(run_b / "step_6" / "model.safetensors"),
                "model")
    assert results["best"]["overall_f1"] == pytest.approx(
        json.loads((run_a / "results.json").read_text())["best"]["overall_f1"])


def test_resume_latest_picks_the_last_checkpoint(trained, tiny_models, tmp_path, capsys):
    run_a, _ = trained
    args = common_args(tiny_models("token_classification"))
    args[args.index("--max_train_steps") + 1] = "8"
    assert main(args + ["--output_dir", str(run_a), "--resume_from_checkpoint", "latest"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert json.loads((run_a / "results.json").read_text())["completed_steps"] == 8


def test_label_count_mismatch_is_a_clear_error_before_training(tmp_path, capsys):
    from workbench.testsupport.tiny_models import build_tiny_model

    two_labels = build_tiny_model("token_classification", tmp_path / "two", labels=["O", "B-X"])
    code = main(["--model_name_or_path", str(two_labels), "--output_dir", str(tmp_path / "out"),
                 "--max_train_steps", "1", "--disable_tqdm"])
    assert code == 2
    error = capsys.readouterr().err
    assert "2 labels" in error and "9" in error and "--ignore_mismatched_sizes" in error
    assert not (tmp_path / "out" / "config.json").exists()


def test_bad_data_line_is_reported_with_file_and_line(tiny_models, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("Lisa B-PER\nParis\n")
    code = main(["--model_name_or_path", tiny_models("token_classification"), "--train_file", str(bad),
                 "--output_dir", str(tmp_path / "out"), "--disable_tqdm"])
    assert code == 2
    assert f"{bad}:2" in capsys.readouterr().err


def test_saved_model_loads_in_a_pipeline(trained):
    from transformers import pipeline

    run_a, _ = trained
    tagger = pipeline("token-classification", model=str(run_a), device="cpu")
    assert isinstance(tagger(TEXT), list)


def direct_ids(model_dir: Path, texts: list[str]) -> list[list[int]]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()
    batch = tokenizer([t.lower() for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits.argmax(dim=-1).tolist()


def test_saved_directory_is_served_and_answers_like_transformers(trained):
    from workbench.testsupport.servers import served

    run_a, _ = trained
    expected = direct_ids(run_a, [TEXT])
    with served(run_a) as url:
        response = httpx.post(f"{url}/v1/models/model:predict", json={"instances": [TEXT]}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == [[expected[0]]]


def test_json_lines_train_file_alone_holds_out_validation(tiny_models, tmp_path, capsys):
    from workbench.ner.sample import sample_sentences

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"tokens": s.tokens, "ner_tags": s.tags}) + "\n"
                            for s in sample_sentences(80, seed=3)))
    out = tmp_path / "out"
    assert main(["--model_name_or_path", tiny_models("token_classification"), "--train_file", str(data),
                 "--output_dir", str(out), "--max_train_steps", "2", "--label_first_subtoken_only",
                 "--disable_tqdm"]) == 0
    assert "holding out 8 training sentences" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["validation"]["sentences"] == 8 and results["data"]["train"]["sentences"] == 72


def test_a_missing_train_file_leaves_no_output_directory(tmp_path, capsys):
    from workbench.ner.train import main

    out = tmp_path / "out"
    assert main(["--train_file", str(tmp_path / "nope.txt"), "--output_dir", str(out)]) == 2
    assert "--train_file" in capsys.readouterr().err and not out.exists()


def test_help_shows_the_defaults(capsys):
    import pytest

    from workbench.ner.train import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: ner-model)" in text and "(default: 5e-05)" in text


def test_document_context_trains_and_scores_the_same_words(tiny_models, tmp_path):
    from workbench.ner.conll import read_sentences

    out = tmp_path / "out"
    assert main(["--model_name_or_path", tiny_models("token_classification"), "--output_dir", str(out),
                 "--max_train_steps", "2", "--max_eval_samples", "30", "--max_length", "64", "--document_context",
                 "--disable_tqdm"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["args"]["document_context"] is True
    windows = results["data"]["validation"]
    assert windows["sentences"] == 30 and windows["tokens"] > 30 * 48  # windows filled close to --max_length 64
    validation, _ = read_sentences(out / "sample_data" / "validation.txt")
    predicted = (out / "validation_predictions.txt").read_text().strip().split("\n\n")
    assert [len(block.splitlines()) for block in predicted] == [len(s.tokens) for s in validation[:30]]
    assert sum(results["best"]["per_entity"][k]["number"] for k in results["best"]["per_entity"]) == sum(
        tag.startswith("B-") for s in validation[:30] for tag in s.tags)


def test_a_diverging_loss_stops_the_run_with_the_step(tiny_models, tmp_path, capsys):
    code = main(["--model_name_or_path", tiny_models("token_classification"), "--output_dir", str(tmp_path / "out"),
                 "--max_train_steps", "6", "--learning_rate", "1e30", "--warmup_ratio", "0", "--disable_tqdm"])
    assert code == 2
    assert "training diverged" in capsys.readouterr().err
