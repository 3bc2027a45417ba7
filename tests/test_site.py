"""The course website's builder (`diffcourse.site`), on a small course made here: what it writes.

The browser test (``tests/e2e/test_site_in_browser.py``) builds the real course and reads every page
in Chromium; these tests check the builder's decisions one by one, in about a second each: chapters
discovered (a new one appears by itself), figures written as the committed PNGs, widgets frozen to
their saved frame, links made to work, MathJax bundled, no network used, Binder / Colab only when asked.
"""
from __future__ import annotations

import base64
import io
import json
import re
import socket
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from diffcourse.__main__ import main
from diffcourse.site import CourseError, SiteOptions, build_site, discover_chapters
from diffcourse.site.frozen_widgets import STATE_MIME, VIEW_MIME, freeze_widgets
from diffcourse.site.links import SiteMap, rewrite_links

README = """# A tiny course

What the course is, with $x_0$ in it.

## Course map

(the README's own map)

## The command line

| command | what it does |
|---|---|
| `sample --sampler ddpm\\|ddim` | draw samples |

## The shipped checkpoints and how good they are

FID 8.0 against a floor of 1.65.

## Reading list

Ho et al. (2020).
"""
EXERCISES_GUIDE = """## Exercises and grading

How a check answers.

### For learners: doing and checking an exercise

Run the check cell.

### For instructors: grading a folder of notebooks

THE INSTRUCTORS' PART
"""


def _png(shade: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 3), color=shade).save(buf, format="PNG")
    return buf.getvalue()


def _widget_output(png: bytes) -> tuple[dict, dict]:
    """A scrubber's output and its saved state: a VBox of a slider, a hidden menu and an image."""
    state = {
        "box": {"model_name": "VBoxModel",
                "state": {"children": ["IPY_MODEL_slider", "IPY_MODEL_menu", "IPY_MODEL_img"]}},
        "slider": {"model_name": "IntSliderModel", "state": {"description": "t", "min": 0, "max": 999, "value": 250}},
        "menu": {"model_name": "DropdownModel", "state": {"description": "secret", "_options_labels": ["hidden"],
                                                           "index": 0, "layout": "IPY_MODEL_hide"}},
        "hide": {"model_name": "LayoutModel", "state": {"display": "none"}},
        "img": {"model_name": "ImageModel", "state": {"format": "png"},
                "buffers": [{"path": ["value"], "encoding": "base64", "data": base64.b64encode(png).decode()}]},
    }
    output = new_output("display_data", data={VIEW_MIME: {"model_id": "box", "version_major": 2, "version_minor": 0},
                                              "text/plain": "VBox(children=(IntSlider(value=250),))"})
    return output, {STATE_MIME: {"state": state, "version_major": 2, "version_minor": 0}}


def _write(path: Path, nb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.fixture
def course(tmp_path) -> Path:
    """A course of two chapters (the first with exercises, a figure, a printed number and a slider)."""
    root = tmp_path / "course"
    widget, widget_state = _widget_output(_png(200))
    figure = new_output("display_data",
                        data={"image/png": base64.b64encode(_png(90)).decode(), "text/plain": "<Figure>"})
    lesson = new_notebook(cells=[
        new_markdown_cell("# Chapter 1 — Alpha: the first steps\n\nNoise $x_t$ from data $x_0$.\n\n"
                          "Next: [part two of chapter 2](02_beta.ipynb#Part-two), [the exercises]"
                          "(../exercises/01_alpha.ipynb), [the design](../DESIGN.md), "
                          "![samples](../docs/samples.png)."),
        new_code_cell("print('mean 27.99')", execution_count=1,
                      outputs=[new_output("stream", name="stdout", text="mean 27.99\n"), figure]),
        new_code_cell("scrubber", execution_count=2, outputs=[widget]),
    ], metadata={"widgets": widget_state})
    _write(root / "notebooks" / "01_alpha.ipynb", lesson)
    _write(root / "notebooks" / "02_beta.ipynb", new_notebook(cells=[
        new_markdown_cell("# Chapter 2 — Beta, the second\n\nIt follows [chapter 1](01_alpha.ipynb) "
                          "(`notebooks/01_alpha.ipynb`).\n\n"
                          "## Part two\n\n$$a=b$$\n\n```\nnotebooks/01_alpha.ipynb\n```")]))
    _write(root / "exercises" / "01_alpha.ipynb", new_notebook(cells=[
        new_markdown_cell("# Chapter 1 exercises — Alpha\n\nWith [the lesson](../notebooks/01_alpha.ipynb)."),
        new_code_cell("raise NotImplementedError")]))
    (root / "docs").mkdir()
    (root / "docs" / "samples.png").write_bytes(_png(30))
    (root / "docs" / "EXERCISES.md").write_text(EXERCISES_GUIDE)
    (root / "README.md").write_text(README)
    (root / "DESIGN.md").write_text("# design\n")
    return root


@pytest.fixture
def built(course, tmp_path) -> Path:
    report = build_site(course, tmp_path / "site")
    assert report.pages[:4] == ["index.html", "notebooks/01_alpha.html", "exercises/01_alpha.html",
                                "notebooks/02_beta.html"]
    return report.out


def _read(site: Path, page: str) -> str:
    return (site / page).read_text(encoding="utf-8")


def test_chapters_are_discovered_and_a_new_one_appears_by_itself(course):
    assert [(c.number, c.short_title, c.exercise) for c in discover_chapters(course)] == [
        (1, "Alpha", "exercises/01_alpha.ipynb"), (2, "Beta", None)]
    _write(course / "notebooks" / "10_flow_matching.ipynb",
           new_notebook(cells=[new_markdown_cell("# Chapter 10 — Flow matching: straight paths\n\nFlows.")]))
    chapters = discover_chapters(course)
    assert [c.number for c in chapters] == [1, 2, 10]
    assert (chapters[-1].title, chapters[-1].summary) == ("Flow matching: straight paths", "Flows.")


def test_a_lesson_without_a_title_heading_is_refused_with_what_to_write(course):
    _write(course / "notebooks" / "03_untitled.ipynb", new_notebook(cells=[new_markdown_cell("no heading")]))
    with pytest.raises(CourseError, match="first markdown cell must start with the lesson's title"):
        discover_chapters(course)


def test_lesson_page_shows_the_committed_outputs(course, built):
    html = _read(built, "notebooks/01_alpha.html")
    assert "Chapter 1 — Alpha: the first steps" in html and "mean 27.99" in html
    assert "$x_t$" in html  # left for MathJax, which the page loads from the site itself
    figures = re.findall(r'<img[^>]* src="(01_alpha_files/01_alpha[^"]+)"', html)
    assert figures and (built / "notebooks" / figures[0]).read_bytes() == _png(90)
    notebook = "notebooks/01_alpha.ipynb"
    assert (built / notebook).read_bytes() == (course / notebook).read_bytes()


def test_widget_becomes_its_saved_frame_with_its_controls_disabled(built):
    html = _read(built, "notebooks/01_alpha.html")
    figure = BeautifulSoup(html, "html.parser").find("figure", class_="frozen-widget")
    assert (built / "notebooks" / figure.find("img", class_="frozen-frame")["src"]).read_bytes() == _png(200)
    slider = figure.find("input", type="range")
    assert (slider["max"], slider["value"], slider.has_attr("disabled")) == ("999", "250", True)
    assert "secret" not in html, "a control its layout hides is not drawn"
    assert 'href="#run-it"' in html and 'id="run-it"' in html and VIEW_MIME not in html


def test_links_lead_to_pages_and_copies_on_the_site(built):
    html = _read(built, "notebooks/01_alpha.html")
    assert 'href="02_beta.html#Part-two"' in html and 'id="Part-two"' in _read(built, "notebooks/02_beta.html")
    assert 'href="../exercises/01_alpha.html"' in html
    assert 'src="../docs/samples.png"' in html and (built / "docs" / "samples.png").read_bytes() == _png(30)
    assert re.search(r'<span class="not-on-site" title="\.\./DESIGN\.md[^"]*">the design</span>', html)
    assert 'href="../notebooks/01_alpha.html"' in _read(built, "exercises/01_alpha.html")
    beta = _read(built, "notebooks/02_beta.html")  # a notebook's path in inline code, as lessons name them
    assert '(<a href="01_alpha.html"><code>notebooks/01_alpha.ipynb</code></a>)' in beta
    assert "<pre><code>notebooks/01_alpha.ipynb" in beta  # but not in a code block


def test_every_page_has_previous_next_and_a_notebook_its_launch_lines(built):
    lesson = _read(built, "notebooks/01_alpha.html")
    assert 'rel="prev" href="../index.html"' in lesson and 'rel="next" href="../exercises/01_alpha.html"' in lesson
    assert "jupyter lab notebooks/01_alpha.ipynb" in lesson and "-r requirements.txt" in lesson
    assert 'href="01_alpha.ipynb" download' in lesson
    assert "mybinder" not in lesson and "colab" not in lesson and "github.com" not in lesson
    assert "(last page)" in _read(built, "reference.html") and "(first page)" in _read(built, "index.html")


def test_binder_and_colab_only_when_the_repository_is_named(course, tmp_path):
    site = build_site(course, tmp_path / "public", SiteOptions(repo="someone/diffcourse", branch="main")).out
    html = _read(site, "notebooks/01_alpha.html")
    assert "https://mybinder.org/v2/gh/someone/diffcourse/main?labpath=notebooks%2F01_alpha.ipynb" in html
    assert "https://colab.research.google.com/github/someone/diffcourse/blob/main/notebooks/01_alpha.ipynb" in html
    assert "git clone --depth 1 https://github.com/someone/diffcourse.git /content/diffcourse" in html
    assert 'href="https://github.com/someone/diffcourse/blob/main/DESIGN.md"' in html  # linked, not unlinked
    with pytest.raises(CourseError, match="OWNER/NAME"):
        SiteOptions(repo="not a repository")


def test_landing_exercises_and_reference_pages(built):
    home = _read(built, "index.html")
    assert "What the course is" in home and "(the README's own map)" not in home
    assert 'href="notebooks/02_beta.html">Beta, the second' in home and "It follows" in home
    assert '<a href="notebooks/01_alpha.html">chapter 1</a>' in home  # a summary's link, from the lesson's folder
    assert "pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt" in home
    guide = _read(built, "exercises/index.html")
    assert "Run the check cell." in guide and "THE INSTRUCTORS' PART" not in guide
    assert 'href="01_alpha.html"' in guide
    reference = _read(built, "reference.html")
    assert "FID 8.0 against a floor of 1.65" in reference and "Ho et al. (2020)" in reference
    assert "<code>sample --sampler ddpm|ddim</code>" in reference  # GitHub reads \| in a table as |


def test_mathjax_and_styles_are_bundled_and_nothing_is_fetched(built):
    mathjax = built / "_static" / "mathjax"
    assert (mathjax / "tex-chtml-full.js").stat().st_size > 500_000
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    for page in built.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link|img)\b[^>]*(?:src|href)="((?:https?:)?//[^"]*)"', html)
        assert not remote, f"{page}: loads {remote} from the network"
        for ref in re.findall(r'<(?:script|link)\b[^>]*(?:src|href)="([^"]+)"', html):
            assert (page.parent / ref).is_file(), f"{page}: {ref} is missing"


def test_the_build_uses_no_network(course, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"the site build tried to connect to {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert build_site(course, tmp_path / "offline").pages


def test_a_rebuild_replaces_the_old_site_but_no_other_folder_is_emptied(course, built, tmp_path):
    (built / "stale.html").write_text("from an older build")
    build_site(course, built)
    assert not (built / "stale.html").exists()
    other = tmp_path / "my-notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(CourseError, match="not a site built by diffcourse"):
        build_site(course, other)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(CourseError, match="would hold the course itself"):
        build_site(course, course)


def test_a_readme_section_renamed_away_is_named_in_the_error(course, tmp_path):
    readme = course / "README.md"
    readme.write_text(readme.read_text().replace("## Reading list", "## Papers"))
    with pytest.raises(CourseError, match="no section 'Reading list'.*'Papers'"):
        build_site(course, tmp_path / "site")


def test_rewrite_links_reports_broken_links_and_keeps_schemes():
    site = SiteMap(root=Path("/nonexistent"), pages={"notebooks/a.ipynb": "notebooks/a.html"})
    html = rewrite_links('<a href="https://arxiv.org/abs/1">p</a> <a href="#x">x</a> <a href="gone.ipynb">g</a>'
                         '<a href="a.ipynb#y">a</a>', "notebooks/b.ipynb", "notebooks/b.html", site, set())
    assert 'href="https://arxiv.org/abs/1"' in html and 'href="#x"' in html and 'href="a.html#y"' in html
    assert site.broken == {"notebooks/b.html: gone.ipynb"}


def test_freeze_widgets_without_saved_state_says_so():
    nb = new_notebook(cells=[new_code_cell("w", outputs=[new_output(
        "display_data", data={VIEW_MIME: {"model_id": "lost"}, "text/plain": "VBox()"})])])
    assert freeze_widgets(nb, "x_files", "Run it.") == {}
    assert json.dumps(nb.cells[0].outputs[0].data) == json.dumps(
        {"text/html": '<p class="frozen-widget-missing">An interactive widget, not saved in the notebook. Run it.</p>'})


def test_command_line(course, tmp_path, capsys):
    assert main(["site", "--root", str(course), "--out", str(tmp_path / "cli")]) == 0
    out, err = capsys.readouterr()
    assert "wrote 6 pages" in out and (tmp_path / "cli" / "index.html").is_file()
    assert "not on the site, shown unlinked (pass --repo to link it on GitHub): DESIGN.md" in err
    assert main(["site", "--root", str(tmp_path), "--out", str(tmp_path / "none")]) == 2
    assert "no lesson notebooks" in capsys.readouterr().err
