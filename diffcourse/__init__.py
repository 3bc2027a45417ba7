"""diffcourse: the small library behind the diffusion-models course.

One module per idea (see README.md):

* `schedules` — beta schedules and the forward process ``q_sample``
* `data.toy2d`, `data.mnist` — datasets
* `models` — networks; `objectives` — what they predict and :math:`L_\\text{simple}`
* `training` — the training loop (EMA, checkpoints, resume)
* `samplers` — turning noise into data
* `metrics`, `plotting`, `widgets` — measuring and seeing
"""
from .device import get_device, seed_everything
from .schedules import NoiseSchedule, make_schedule

__version__ = "0.1.0"
__all__ = ["get_device", "seed_everything", "make_schedule", "NoiseSchedule"]


def __getattr__(name: str):
    # load_pretrained imports the MNIST models; import it lazily so `import diffcourse` stays light
    if name == "load_pretrained":
        from .pretrained import load_pretrained
        return load_pretrained
    raise AttributeError(f"module 'diffcourse' has no attribute {name!r}")
