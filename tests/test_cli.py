"""``python -m diffcourse train`` / ``sample`` end to end, on tiny sizes, on the CPU."""
import numpy as np
import pytest
import torch

from diffcourse.__main__ import build_parser, main
from diffcourse.sampling import parse_labels
from diffcourse.models import UNet
from diffcourse.recipes import mnist as recipes


def test_every_command_has_help(capsys):
    for cmd in ("train", "sample"):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([cmd, "--help"])
        assert e.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_parse_labels():
    assert parse_labels("0-9", 12).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert parse_labels("3", 4).tolist() == [3, 3, 3, 3]
    assert parse_labels("1,7", 3).tolist() == [1, 7, 1]
    with pytest.raises(ValueError, match="labels"):
        parse_labels("12", 3)


def test_sample_end_to_end(tiny_export, tmp_path, capsys):
    out = tmp_path / "s.npz"
    rc = main(["sample", "--model", str(tiny_export), "--sampler", "ddim", "--steps", "3", "--n", "5", "--seed", "1",
               "--guidance", "2", "--labels", "0-9", "--out", str(out), "--device", "cpu", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "NFE=6" in printed and " s " in printed
    d = np.load(out)
    assert d["images"].shape == (5, 1, 28, 28) and d["images"].dtype == np.float32
    assert d["images"].min() >= -1 and d["images"].max() <= 1
    assert d["labels"].tolist() == [0, 1, 2, 3, 4]
    rc = main(["sample", "--model", str(tiny_export), "--steps", "3", "--n", "5", "--seed", "1", "--guidance", "2",
               "--out", str(tmp_path / "t.npz"), "--device", "cpu", "--no-progress"])
    assert rc == 0 and np.array_equal(np.load(tmp_path / "t.npz")["images"], d["images"])  # same seed, same images


def test_sample_rejects_labels_for_unconditional(tmp_path, capsys):
    m = UNet(ch=8, ch_mult=(1, 2))
    path = tmp_path / "u.pt"
    torch.save({"state_dict": m.state_dict(), "config": m.config, "model": "UNet"}, path)
    rc = main(["sample", "--model", str(path), "--steps", "2", "--n", "2", "--labels", "3",
               "--out", str(tmp_path / "u.npz"), "--device", "cpu", "--no-progress"])
    assert rc == 2 and "unconditional" in capsys.readouterr().err


def _export(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_train_resume_after_interruption(tmp_path, monkeypatch):
    args = ["train", "mnist-classifier", "--steps", "3", "--device", "cpu", "--no-progress", "--checkpoint-every", "0"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    full = _export(tmp_path / "a" / "mnist-classifier.pt")

    original = recipes._loss_fn

    def interrupted(recipe):
        f, calls = original(recipe), [0]

        def g(*a):
            calls[0] += 1
            if calls[0] == 2:
                raise KeyboardInterrupt  # killed during the second step
            return f(*a)
        return g

    monkeypatch.setattr(recipes, "_loss_fn", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(args + ["--out", str(tmp_path / "b")])
    assert torch.load(tmp_path / "b" / "train.pt", weights_only=True)["step"] == 1
    monkeypatch.setattr(recipes, "_loss_fn", original)
    assert main(args + ["--out", str(tmp_path / "b"), "--resume"]) == 0
    resumed = _export(tmp_path / "b" / "mnist-classifier.pt")
    assert all(torch.equal(full[k], resumed[k]) for k in full)
