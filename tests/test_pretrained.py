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


def test_shipped_checkpoints_match_manifest():
    if not (pretrained.CHECKPOINT_DIR / "manifest.json").exists():
        pytest.skip("no checkpoints shipped yet")
    m = pretrained.manifest()
    total = 0
    for name, info in m["checkpoints"].items():
        path = pretrained.CHECKPOINT_DIR / info["file"]
        assert sha256(path) == info["sha256"], name
        total += path.stat().st_size
        model = load_pretrained(name)
        assert sum(p.numel() for p in model.parameters()) == info["parameters"]
    assert total <= 10 * 2**20
