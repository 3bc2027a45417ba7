import pytest
import torch

from diffcourse.data import toy2d
from diffcourse.schedules import make_schedule
from diffcourse.widgets import FrameScrubber, TimestepScrubber

PNG = b"\x89PNG"


def test_timestep_scrubber_swaps_frames_2d():
    sch = {"linear": make_schedule("linear", T=100), "cosine": make_schedule("cosine", T=100)}
    w = TimestepScrubber(toy2d.sample("moons", 200), sch, n_frames=5)
    first = w.select(0)
    assert first.startswith(PNG) and w.t() == 0
    last = w.select(4)
    assert last.startswith(PNG) and last != first and w.t() == 99
    assert "t = 99" in w.caption.value
    cos = w.select(choice="cosine")
    assert cos != last, "switching schedule must change the frame"
    assert w.n_frames == 5


def test_timestep_scrubber_images_and_bad_input():
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    w = TimestepScrubber(x0, make_schedule("linear", T=50), n_frames=3)
    assert w.select(1) != w.select(2)
    with pytest.raises(ValueError, match="points or"):
        TimestepScrubber(torch.zeros(5, 3), make_schedule("linear", T=10))


def test_frame_scrubber_validation():
    with pytest.raises(ValueError, match="same length"):
        FrameScrubber({"a": [PNG], "b": [PNG, PNG]}, {"a": ["x"], "b": ["x", "y"]})
    w = FrameScrubber({"a": [PNG + b"1", PNG + b"2"]}, {"a": ["one", "two"]}, play=False)
    assert w.select(1) == PNG + b"2" and w.caption.value == "two"
    with pytest.raises(ValueError, match="Unknown choice"):
        w.select(choice="zzz")
