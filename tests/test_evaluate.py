import json

import numpy as np
import pytest
import torch

from diffcourse.__main__ import main
from diffcourse.evaluation import evaluate_images
from diffcourse.data.mnist import load_mnist
from diffcourse.models import Classifier


@pytest.fixture(scope="module")
def clf():
    torch.manual_seed(0)
    return Classifier(ch=8).eval()


def test_evaluate_real_digits_sit_at_the_floor(clf):
    x, y = load_mnist("train")
    r = evaluate_images(x[:200], y[:200], classifier=clf)
    assert set(r) == {"n", "fid", "fid_floor", "inception_score", "precision", "recall", "accuracy"}
    assert r["n"] == 200 and r["fid"] < 3 * r["fid_floor"] + 1e-6
    assert 0.5 < r["precision"] <= 1 and 0.5 < r["recall"] <= 1
    noise = evaluate_images(torch.rand(200, 1, 28, 28) * 2 - 1, classifier=clf)
    assert noise["fid"] > r["fid"]


def test_evaluate_cli(tmp_path, capsys, monkeypatch, clf):
    import diffcourse.pretrained as pre

    monkeypatch.setattr(pre, "load_pretrained", lambda name, device=None, **kw: clf)
    x, y = load_mnist("test")
    np.savez(tmp_path / "s.npz", images=x[:50].numpy(), labels=y[:50].numpy())
    assert main(["evaluate", str(tmp_path / "s.npz"), "--json", str(tmp_path / "r.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 50 and "accuracy" in out and json.loads((tmp_path / "r.json").read_text())["fid"] == out["fid"]
    np.savez(tmp_path / "bad.npz", images=(x[:50] * 3).numpy())
    assert main(["evaluate", str(tmp_path / "bad.npz")]) == 2
    assert "[-1, 1]" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
