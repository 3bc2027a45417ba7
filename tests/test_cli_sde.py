"""``python -m diffcourse sample --sampler sde|pc|ode`` (chapter 4's samplers) end to end on a tiny network."""
import numpy as np
import pytest
import torch

from diffcourse.__main__ import main
from diffcourse.models import UNet


@pytest.fixture
def tiny_uncond(tmp_path):
    torch.manual_seed(0)
    m = UNet(ch=8, ch_mult=(1, 2))
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": m.state_dict(), "config": m.config, "model": "UNet", "recipe": "test",
                "settings": {"schedule": "linear", "T": 1000}}, path)
    return path


@pytest.mark.parametrize("sampler,nfe", [("sde", 3), ("pc", 5), ("ode", 6)])
def test_sde_samplers_from_the_cli(tiny_uncond, tmp_path, capsys, sampler, nfe):
    def args(out):
        return ["sample", "--model", str(tiny_uncond), "--sampler", sampler, "--steps", "3", "--n", "4", "--seed", "2",
                "--out", str(out), "--device", "cpu", "--no-progress"]

    assert main(args(tmp_path / "a.npz")) == 0
    assert f"NFE={nfe}" in capsys.readouterr().out
    images = np.load(tmp_path / "a.npz")["images"]
    assert images.shape == (4, 1, 28, 28) and np.isfinite(images).all()
    assert main(args(tmp_path / "b.npz")) == 0
    assert np.array_equal(np.load(tmp_path / "b.npz")["images"], images), "same seed, same samples"


def test_classifier_guidance_from_the_cli(tiny_uncond, tmp_path, capsys):
    from diffcourse.models import NoisyClassifier

    torch.manual_seed(1)
    clf = NoisyClassifier()
    clf_path = tmp_path / "clf.pt"
    torch.save({"state_dict": clf.state_dict(), "config": clf.config, "model": "NoisyClassifier"}, clf_path)
    common = ["sample", "--model", str(tiny_uncond), "--steps", "3", "--n", "4", "--labels", "7",
              "--classifier", str(clf_path), "--device", "cpu", "--no-progress"]
    assert main(common + ["--classifier-scale", "0", "--out", str(tmp_path / "s0.npz")]) == 0
    assert main(common + ["--classifier-scale", "50", "--out", str(tmp_path / "s50.npz")]) == 0
    assert "classifier guidance s=50" in capsys.readouterr().out
    a, b = np.load(tmp_path / "s0.npz"), np.load(tmp_path / "s50.npz")
    assert b["labels"].tolist() == [7, 7, 7, 7]
    assert not np.allclose(a["images"], b["images"]), "the classifier's gradient must change the samples"
    assert main(common[:-5] + ["--device", "cpu", "--no-progress", "--out", str(tmp_path / "x.npz")]) == 2
    assert "unconditional" in capsys.readouterr().err
