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


def test_score_field_scrubber():
    from diffcourse.widgets import ScoreFieldScrubber

    gm = toy2d.mixture("8gaussians")
    times = [1.0, 0.5, 0.01]
    traj = torch.stack([torch.randn(50, 2) * s for s in (1.0, 0.7, 0.3)])
    w = ScoreFieldScrubber(lambda x, t: gm.noised(1 - float(t[0])).score(x), times, traj, grid=7)
    frames = [w.select(i) for i in range(3)]
    assert len(set(frames)) == 3 and all(f.startswith(PNG) for f in frames)
    with pytest.raises(ValueError, match="frames"):
        ScoreFieldScrubber(lambda x, t: x, times, traj[:2])


def test_reverse_trajectory_scrubber():
    from diffcourse.models import ToyMLP
    from diffcourse.objectives import eps_fn
    from diffcourse.samplers import ddpm_sample
    from diffcourse.widgets import ReverseTrajectoryScrubber

    s = make_schedule("linear", T=30)
    _, traj = ddpm_sample(eps_fn(ToyMLP(hidden=16, depth=1), s), s, (50, 2), generator=torch.Generator().manual_seed(0),
                          return_trajectory=True)
    imgs = torch.rand(31, 2, 1, 8, 8) * 2 - 1
    w = ReverseTrajectoryScrubber({"2D": traj, "images": imgs}, s, n_frames=6)
    assert w.times["2D"][0] == 29 and w.times["2D"][-1] == -1
    a, b = w.select(0), w.select(5)
    assert a != b and "final sample" in w.caption.value
    assert w.select(choice="images") != b
    with pytest.raises(ValueError, match="timesteps"):
        ReverseTrajectoryScrubber({"2D": traj[:-1]}, s)


def test_image_grid_scrubber():
    from diffcourse.widgets import ImageGridScrubber

    g = torch.Generator().manual_seed(0)
    grids = {f"eta={e}": [torch.rand(4, 1, 28, 28, generator=g) * 2 - 1 for _ in range(3)] for e in (0, 1)}
    w = ImageGridScrubber(grids, [10, 20, 50], "steps", choice_label="eta", nrow=4)
    a = w.select(0)
    b = w.select(2)
    assert a.startswith(PNG) and a != b and w.value() == 50 and "steps = 50" in w.caption.value
    assert w.select(choice="eta=1") != b
    with pytest.raises(ValueError, match="values"):
        ImageGridScrubber(grids, [10, 20], "steps")


def test_menu_grid_scrubber():
    from diffcourse.widgets import MenuGridScrubber

    g = torch.Generator().manual_seed(0)
    grids = {(mask, method): [torch.rand(3, 1, 28, 28, generator=g) * 2 - 1 for _ in range(4)]
             for mask in ("centre", "left") for method in ("replace", "RePaint", "SDEdit")}
    w = MenuGridScrubber(grids, ["mask", "method"], [0.25, 0.5, 0.75, 1.0], "strength", nrow=3, start=3)
    assert list(w.menus) == ["mask", "method"] and w.value() == 1.0
    a = w.select(0)
    b = w.select(3, method="SDEdit")
    c = w.select(mask="left")
    assert len({a, b, c}) == 3 and all(f.startswith(PNG) for f in (a, b, c))
    assert w.choice.value == "left · SDEdit" and "strength = 1" in w.caption.value
    assert w.select(3, mask="centre", method="SDEdit") == b, "the same controls show the same frame"
    with pytest.raises(ValueError, match="Unknown menu"):
        w.select(colour="red")
    with pytest.raises(ValueError, match="Unknown choice"):
        w.select(mask="ring")
    with pytest.raises(ValueError, match="combination"):
        MenuGridScrubber({k: v for k, v in grids.items() if k != ("left", "SDEdit")}, ["mask", "method"],
                         [0.25, 0.5, 0.75, 1.0], "strength")
