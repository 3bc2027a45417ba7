"""benchmarks/latent.py measures the shipped networks as shipped: its timed training steps run on copies."""
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import latent as latent_benchmark  # noqa: E402

from diffcourse.pretrained import load_model  # noqa: E402
from diffcourse.schedules import make_schedule  # noqa: E402


def test_the_speed_part_leaves_the_measured_networks_untouched():
    torch.manual_seed(0)
    pixel, ldm, vae = (load_model(name)[0] for name in ("mnist-ddpm", "latent-ldm", "latent-vae"))
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (pixel, ldm)]
    train_x = torch.rand(128, 1, 28, 28) * 2 - 1
    out = latent_benchmark.speed_part(pixel, ldm, vae, make_schedule("linear", 1000), train_x,
                                      types.SimpleNamespace(seed=0, reps=1))
    assert out["pixel"]["train_images_per_s"] > 0 and out["latent"]["train_images_per_s"] > 0
    for model, state in zip((pixel, ldm), before):
        assert not model.training
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), \
            "speed_part changed a network that the benchmark measures afterwards"
