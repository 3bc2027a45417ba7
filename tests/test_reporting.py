"""diffcourse.reporting: docstrings rendered as Markdown, and benchmark results turned into tables and plots."""
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from diffcourse import reporting  # noqa: E402
from diffcourse.reporting import (cfg_sweep, cfg_table, cg_sweep, cg_table, ddim_steps_table,  # noqa: E402
                                  docstring_markdown, floor_stats, load_results, plot_cfg_tradeoff, plot_quality_vs_nfe, rst_to_markdown,
                                  source_markdown)

RST = re.compile(r":math:`|(?<!`)``(?!`)[^`\n]+(?<!`)``(?!`)")


def test_rst_to_markdown_converts_roles_blocks_and_literals():
    rst = """One step: :math:`x_t = \\sqrt{\\alpha_t}\\,x_{t-1}` with ``eps`` and :func:`q_sample`.

    .. math::

        a = b

        c = d

    .. math:: e = f

    A drawing::

        x --> y

    >>> 1 + 1
    2
    """
    md = rst_to_markdown(rst)
    assert "$x_t = \\sqrt{\\alpha_t}\\,x_{t-1}$" in md and "`eps`" in md and "`q_sample`" in md
    assert md.count("$$") == 6 and "$$\na = b\n$$" in md and "$$\ne = f\n$$" in md
    assert "A drawing:\n\n```text\nx --> y\n```" in md
    assert "```python\n>>> 1 + 1\n2\n```" in md
    assert not RST.search(md)


def test_every_public_docstring_of_the_package_renders_without_rst():
    import importlib
    import inspect
    import pkgutil

    import diffcourse

    seen = 0
    for info in pkgutil.walk_packages(diffcourse.__path__, "diffcourse."):
        if ".grading" in info.name or info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for obj in [mod] + [v for k, v in vars(mod).items() if not k.startswith("_") and getattr(v, "__module__", None) == mod.__name__
                            and (inspect.isfunction(v) or inspect.isclass(v))]:
            md = docstring_markdown(obj)
            assert not RST.search(md), (info.name, getattr(obj, "__name__", obj), RST.search(md).group(0))
            seen += 1
    assert seen > 100


def test_source_markdown_renders_the_docstring_and_keeps_the_code():
    from diffcourse.models.embeddings import LabelEmbedding
    from diffcourse.samplers.ddim import ddim_step
    from diffcourse.schedules import NoiseSchedule

    md = source_markdown(ddim_step)
    assert md.startswith("**`ddim_step`** · `diffcourse.samplers.ddim`")
    assert "$\\hat\\varepsilon = \\varepsilon_\\theta(x_t, t)$" in md
    code = md.split("```python\n", 1)[1]
    assert code.startswith("def ddim_step(") and '"""' not in code and "return ddim_update(" in code
    assert not RST.search(md)
    method = source_markdown(NoiseSchedule.q_sample)
    assert "```python\ndef q_sample(self," in method and "$x_t = " in method
    cls = source_markdown(LabelEmbedding)
    assert "class LabelEmbedding(nn.Module):\n    def __init__" in cls and not RST.search(cls)


def test_source_markdown_converts_nested_docstrings_in_place():
    def outer():
        """Top :math:`a`."""
        def inner():
            """Inner ``b`` and :math:`c`."""
        return inner
    md = source_markdown(outer)
    assert "Top $a$." in md and '"""Inner `b` and $c$."""' in md and not RST.search(md)


def test_load_results_reads_a_file_and_tells_how_to_make_a_missing_one(tmp_path, capsys):
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"n": 3, "device": "cpu"}))
    assert load_results(p) == {"n": 3, "device": "cpu"}
    assert "n = 3, device = cpu" in capsys.readouterr().out
    assert load_results(tmp_path / "samplers.json") is None
    out = capsys.readouterr().out
    assert "python benchmarks/samplers.py" in out and str(tmp_path) not in out


QUALITY = {"n": 100, "floor": {"n": 100, "fid_mean": 2.0, "fid_draws": [1.5, 2.0, 2.5]},
           "cfg": {"n": 100, "per_w": {"0.0": {"accuracy": 0.1, "fid": 50.0, "seconds": 1.0, "nfe": 50},
                                       "1.0": {"accuracy": 0.9, "fid": 5.0, "seconds": 1.0, "nfe": 50},
                                       "3.0": {"accuracy": 0.99, "fid": 20.0, "seconds": 2.0, "nfe": 100},
                                       "1.25": {"accuracy": 0.95, "fid": 4.0, "seconds": 2.0, "nfe": 100}}}}


def test_cfg_helpers():
    rows = cfg_sweep(QUALITY)
    assert [r["w"] for r in rows] == [0.0, 1.0, 1.25, 3.0]
    table = cfg_table(QUALITY)
    assert "| 1.25 **(lowest FID)** | 0.25 | 0.9500 | 4.00 |" in table
    assert "| real vs real (floor), N = 100 |  |  | 2.00 ± 0.50 |" in table
    ax = plot_cfg_tradeoff(QUALITY)
    assert ax is not None and len(ax.lines) >= 2
    plt.close("all")
    assert cfg_sweep(None) == [] and plot_cfg_tradeoff({}) is None


def test_sweeps_at_their_own_n_are_read_against_the_floor_at_that_n():
    quality = {**QUALITY, "cfg": {**QUALITY["cfg"], "n": 50, "floor_at_n": 3.5},
               "cg": {"n": 50, "floor_at_n": 3.5, "per_s": {"2.0": {"accuracy": 0.5, "fid": 9.0, "seconds": 3.0, "nfe": 50},
                                                          "0.0": {"accuracy": 0.1, "fid": 8.0, "seconds": 2.0, "nfe": 50}}}}
    assert "| real vs real (floor), N = 50 |  |  | 3.50 |" in cfg_table(quality)
    assert [r["s"] for r in cg_sweep(quality)] == [0.0, 2.0]
    table = cg_table(quality)
    assert "| 0 **(lowest FID)** | 0.100 | 8.00 | 50 | 2.0 |" in table and "| real vs real (floor), N = 50 |  | 3.50 |" in table
    assert cg_sweep({}) == [] and "no classifier-guidance sweep" in cg_table(None)


def test_samplers_helpers():
    bench = {"n": 10, "rows": [{"spec": "ddim:10:0", "model": "mnist-ddpm", "fid": 9.0, "seconds": 1.0, "fid_floor": 1.0, "nfe": 10},
                               {"spec": "ddpm", "model": "mnist-ddpm", "fid": 5.0, "seconds": 9.0, "fid_floor": 1.0, "nfe": 1000},
                               {"spec": "cfg:20:1", "model": "mnist-cfg", "fid": 4.0, "seconds": 1.0, "fid_floor": 1.0, "nfe": 20}]}
    table = ddim_steps_table(bench, steps=(10, 20))
    assert "| 10 | 9.00 | 1.0 | — | — |" in table and "| 20 | — | — | — | — |" in table
    assert "| **DDPM** ancestral, 1000 | 5.00 | 9.0 |" in table and "floor), N = 10 | 1.00 |" in table
    assert "DDPM" not in ddim_steps_table({**bench, "rows": bench["rows"][:1]}, steps=(10,))
    _, ax = plt.subplots()
    plot_quality_vs_nfe(ax, {"a": [(10, 9.0), (20, 7.0)]}, floor=1.0, floor_range=(0.5, 1.5))
    assert ax.get_xscale() == "log"
    plt.close("all")
    assert floor_stats([1.0, 2.0, 3.0]) == pytest.approx({"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "n": 3})


def test_results_dir_is_the_repository_benchmarks_folder():
    assert reporting.RESULTS_DIR.parts[-2:] == ("benchmarks", "results")
