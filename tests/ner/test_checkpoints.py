import json

import pytest

from workbench.ner.checkpoints import (
    TRAINER_STATE,
    atomic_directory_write,
    atomic_files_write,
    list_checkpoints,
    resolve_resume,
    write_json_atomic,
)


def test_a_failed_save_leaves_the_previous_one_whole(tmp_path):
    target = tmp_path / "step_5"
    atomic_directory_write(target, lambda d: (d / "weights").write_text("old"))

    def crash(directory):
        (directory / "weights").write_text("half")
        raise KeyboardInterrupt("killed mid-save")

    with pytest.raises(KeyboardInterrupt):
        atomic_directory_write(target, crash)
    assert (target / "weights").read_text() == "old"
    atomic_directory_write(target, lambda d: (d / "weights").write_text("new"))
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_5"]


def test_a_failed_save_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        atomic_directory_write(tmp_path / "epoch_1", lambda d: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not (tmp_path / "epoch_1").exists()
    assert list_checkpoints(tmp_path) == []


def test_files_replaced_one_by_one_weights_last(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    order = atomic_files_write(tmp_path, lambda d: [(d / n).write_text(n) for n in
                                                    ("model.safetensors", "config.json", "vocab.txt")],
                               last=("model.safetensors",))
    assert order[-1] == "model.safetensors"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "results.json",
                                                         "vocab.txt"]


def test_latest_checkpoint_by_step_ignoring_partial_ones(tmp_path):
    for name, step in (("step_10", 10), ("step_5", 5), ("epoch_1", 7)):
        (tmp_path / name).mkdir()
        (tmp_path / name / TRAINER_STATE).write_text(json.dumps({"completed_steps": step}))
    (tmp_path / ".step_20.partial").mkdir()
    (tmp_path / "step_30").mkdir()  # no trainer state: not a finished checkpoint
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_5", "epoch_1", "step_10"]
    assert resolve_resume("latest", tmp_path).name == "step_10"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resolve_resume("latest", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        resolve_resume(str(tmp_path / "step_30"), tmp_path)


def test_json_written_atomically(tmp_path):
    write_json_atomic(tmp_path / "results.json", {"a": 1})
    assert json.loads((tmp_path / "results.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_model_files_end_up_readable_by_others(tmp_path):
    import stat

    def write(directory):
        (directory / "model.safetensors").write_text("w")
        (directory / "model.safetensors").chmod(0o600)

    atomic_files_write(tmp_path, write)
    assert (tmp_path / "model.safetensors").stat().st_mode & stat.S_IROTH
