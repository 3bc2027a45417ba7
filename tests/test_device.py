import pytest
import torch

from diffcourse.device import get_device, make_generator, seed_everything


def test_env_override(monkeypatch):
    monkeypatch.setenv("DIFFCOURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_asking_for_missing_cuda_explains(monkeypatch):
    monkeypatch.setenv("DIFFCOURSE_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="DIFFCOURSE_DEVICE"):
        get_device()


def test_seeding_is_repeatable():
    g1 = seed_everything(7)
    a = torch.randn(3), torch.randn(3, generator=g1)
    g2 = seed_everything(7)
    b = torch.randn(3), torch.randn(3, generator=g2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(torch.randn(2, generator=make_generator(3)), torch.randn(2, generator=make_generator(3)))
