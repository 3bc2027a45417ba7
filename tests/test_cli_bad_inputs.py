"""Bad inputs to the command line: each is answered by one clear line on stderr and exit status 2, never a traceback."""
import pytest
import torch

from diffcourse.__main__ import main


def _sample(tiny_export, tmp_path, *extra, out=None):
    return main(["sample", "--model", str(tiny_export), "--steps", "2", "--n", "2", "--device", "cpu", "--no-progress",
                 "--out", str(out or tmp_path / "s.npz"), *extra])


def _one_clear_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("extra,words", [
    (["--eta", "-1"], ["eta", "[0.0, 1.0]"]),
    (["--eta", "1.5"], ["eta"]),
    (["--guidance", "nan"], ["guidance", "finite"]),
    (["--guidance", "inf"], ["guidance", "finite"]),
    (["--sampler", "ode", "--eta", "0.5"], ["eta", "DDIM"]),
    (["--n", "0"], ["positive"]),
    (["--steps", "0"], ["positive"]),
    (["--labels", "12"], ["labels"]),
])
def test_sample_rejects_bad_options(tiny_export, tmp_path, capsys, extra, words):
    assert _sample(tiny_export, tmp_path, *extra) == 2
    _one_clear_line(capsys, *words)
    assert not (tmp_path / "s.npz").exists(), "nothing is written for a rejected command"


def test_sample_out_under_a_file(tiny_export, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert _sample(tiny_export, tmp_path, out=tmp_path / "afile" / "s.npz") == 2
    _one_clear_line(capsys, "is a file")


def test_sample_out_is_a_folder(tiny_export, tmp_path, capsys):
    assert _sample(tiny_export, tmp_path, out=tmp_path) == 2
    _one_clear_line(capsys, "is a folder")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_asked_for_without_a_gpu(tiny_export, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIFFCOURSE_DEVICE", "cuda")
    rc = main(["sample", "--model", str(tiny_export), "--steps", "2", "--n", "2", "--no-progress", "--out", str(tmp_path / "s.npz")])
    assert rc == 2
    _one_clear_line(capsys, "CUDA", "DIFFCOURSE_DEVICE")
    rc = main(["train", "mnist-classifier", "--steps", "1", "--no-progress", "--out", str(tmp_path / "run")])
    assert rc == 2
    _one_clear_line(capsys, "CUDA")


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_train_resume_over_a_corrupt_checkpoint(tmp_path, capsys, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.pt").write_bytes(content)
    rc = main(["train", "mnist-classifier", "--steps", "2", "--device", "cpu", "--no-progress", "--resume",
               "--out", str(tmp_path / "run")])
    assert rc == 2
    _one_clear_line(capsys, "train.pt", "not a readable training checkpoint", "delete it")


def test_train_resume_over_a_foreign_checkpoint(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    torch.save({"state_dict": {}}, tmp_path / "run" / "train.pt")
    rc = main(["train", "mnist-classifier", "--steps", "2", "--device", "cpu", "--no-progress", "--resume",
               "--out", str(tmp_path / "run")])
    assert rc == 2
    _one_clear_line(capsys, "not a training checkpoint", "missing model")


@pytest.mark.parametrize("content", [b"hello, I am text", b"\x80\x04\x95 a pickle header"])
def test_evaluate_refuses_a_file_that_is_not_an_npz(tmp_path, capsys, content):
    path = tmp_path / "samples.npz"
    path.write_bytes(content)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is not a samples file" in err and "allow_pickle" not in err and "Traceback" not in err
