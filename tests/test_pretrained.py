"""Shipped checkpoints: SHA-256 verification, weights_only loading, clear errors."""
import json
import pickle

import pytest
import torch

from diffcourse import pretrained
from diffcourse.models import Classifier
from diffcourse.pretrained import ChecksumError, PretrainedError, load_pretrained, sha256


@pytest.fixture
def ckpt_dir(tmp_path):
    torch.manual_seed(0)
    m = Classifier(ch=8)
    path = tmp_path / "tiny-classifier.pt"
    torch.save({"state_dict": m.state_dict(), "config": m.config, "model": "Classifier"}, path)
    manifest = {"checkpoints": {"tiny-classifier": {"file": path.name, "sha256": sha256(path), "recipe": "test"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path, m


def test_load_verified(ckpt_dir):
    folder, m = ckpt_dir
    loaded = load_pretrained("tiny-classifier", checkpoint_dir=folder)
    assert not loaded.training and loaded.pretrained_info["recipe"] == "test"
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(loaded(x), m.eval()(x))


def test_tampered_file_is_refused(ckpt_dir):
    folder, _ = ckpt_dir
    path = folder / "tiny-classifier.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="tiny-classifier.pt") as e:
        load_pretrained("tiny-classifier", checkpoint_dir=folder)
    assert "SHA-256" in str(e.value) and "git checkout" in str(e.value)


def test_truncated_file_is_refused(ckpt_dir):
    folder, _ = ckpt_dir
    path = folder / "tiny-classifier.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ChecksumError, match="tiny-classifier.pt"):
        load_pretrained("tiny-classifier", checkpoint_dir=folder)
    with pytest.raises(PretrainedError, match="tiny-classifier.pt"):  # even without the hash check
        load_pretrained("tiny-classifier", checkpoint_dir=folder, verify=False)


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_weights_only_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "config": {}, "model": "Classifier", "payload": Evil()}, path, pickle_module=pickle)
    manifest = {"checkpoints": {"evil": {"file": "evil.pt", "sha256": sha256(path)}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PretrainedError, match="weights_only=True"):
        load_pretrained("evil", checkpoint_dir=tmp_path)


def test_unknown_and_missing(ckpt_dir):
    folder, _ = ckpt_dir
    with pytest.raises(PretrainedError, match="Available: tiny-classifier"):
        load_pretrained("nope", checkpoint_dir=folder)
    (folder / "tiny-classifier.pt").unlink()
    with pytest.raises(PretrainedError, match="missing"):
        load_pretrained("tiny-classifier", checkpoint_dir=folder)


SHIPPED = ["latent-gan", "latent-ldm", "latent-vae", "latent-vae-beta1", "mnist-cfg", "mnist-classifier", "mnist-ddpm",
           "mnist-flow", "mnist-noisy-classifier"]
MNIST_FOUR = ("mnist-ddpm", "mnist-cfg", "mnist-classifier", "mnist-noisy-classifier")  # DESIGN §8: <= 10 MB


def test_shipped_checkpoints_match_manifest():
    m = pretrained.manifest()
    assert sorted(m["checkpoints"]) == SHIPPED
    total = mnist = 0
    for name, info in m["checkpoints"].items():
        path = pretrained.CHECKPOINT_DIR / info["file"]
        assert sha256(path) == info["sha256"], name
        total += path.stat().st_size
        mnist += path.stat().st_size if name in MNIST_FOUR else 0
        model = load_pretrained(name)
        assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    assert mnist <= 10 * 10**6  # the four MNIST networks <= 10 MB
    assert total <= 20 * 10**6  # all checkpoints together <= 20 MB (DESIGN §8)


@pytest.fixture(scope="module")
def test_digits():
    from diffcourse.data.mnist import load_mnist
    x, y = load_mnist("test")
    return x[:500], y[:500]


def test_shipped_classifier_reads_digits(test_digits):
    """The FID feature network must be a good classifier (the shipped one reads 99.45 % of all 10 000 test digits;
    the target is >= 99.3 %; here >= 99 % of the first 500, so that the test stays fast)."""
    x, y = test_digits
    with torch.no_grad():
        acc = (load_pretrained("mnist-classifier")(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.99, acc


def test_shipped_noisy_classifier_beats_chance_when_noisy(test_digits):
    """Classifier guidance needs a classifier that still reads x_t at moderate noise."""
    x, y = test_digits
    sched, model = pretrained.pretrained_schedule("mnist-noisy-classifier"), load_pretrained("mnist-noisy-classifier")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # the shipped network reads 99.6 / 98.6 / 62.0 % of these 500 digits (chance is 10 %; the closed-form
        # linear discriminant on x_t, metrics.lda_on_noisy, reads 87 / 84 / 56 % of all 10 000 test digits)
        for t, floor in ((0, 0.98), (250, 0.95), (500, 0.56)):
            x_t = sched.q_sample(x, t, torch.randn(x.shape, generator=g))
            acc = (model(x_t, torch.full((len(x),), t)).argmax(1) == y).float().mean().item()
            assert acc >= floor, (t, acc)


@pytest.mark.parametrize("name", ["mnist-ddpm", "mnist-cfg"])
def test_shipped_denoisers_predict_the_noise(name, test_digits):
    """On held-out digits the eps-prediction error is far below Var(eps) = 1 at every noise level."""
    x, y = test_digits
    x = x[:200]
    sched, model = pretrained.pretrained_schedule(name), load_pretrained(name)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in (50, 300, 700):
            eps = torch.randn(x.shape, generator=g)
            tt = torch.full((len(x),), t)
            pred = model(sched.q_sample(x, t, eps), tt) if name == "mnist-ddpm" else model(sched.q_sample(x, t, eps), tt, y[:200])
            assert (pred - eps).pow(2).mean().item() < 0.25, (name, t)


def test_load_or_train_switches_between_shipped_and_trained(tmp_path):
    shipped = pretrained.load_or_train("mnist-classifier")
    assert shipped.pretrained_info["sha256"] == pretrained.checkpoint_info("mnist-classifier")["sha256"]
    trained = pretrained.load_or_train("mnist-classifier", train=True, device="cpu", out=tmp_path, steps=2)
    assert not trained.training and trained.pretrained_info["training_steps"] == 2
    assert (tmp_path / "mnist-classifier.pt").exists() and (tmp_path / "train.pt").exists()
    assert not torch.equal(next(shipped.parameters()), next(trained.parameters()))
