"""Build the whole site: gather the pages in reading order, render them, write them with their files.

Reading order — what "previous / next" walks through — is: the landing page; each chapter's lesson
followed by its exercises; the exercises' overview; the reference. Nothing is executed and nothing is
downloaded: the pages show the notebooks' committed outputs, and MathJax and the stylesheets come from
installed packages (`copy_assets`).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from .assets import copy_assets
from .course import Chapter, CourseError, discover_chapters, markdown_sections
from .links import SiteMap, relative_url, rewrite_links
from .notebook_html import NotebookRenderer, markdown_html
from .pages import CPU_INDEX, Page, SiteOptions, render_page, template_env

__all__ = ["BuildReport", "build_site", "README_REFERENCE", "EXERCISES_GUIDE"]

README_REFERENCE = ["The command line", "The shipped checkpoints", "Reading list"]  # headings' beginnings
EXERCISES_GUIDE = ["Exercises and grading"]  # docs/EXERCISES.md, up to its part for instructors
EXERCISES_GUIDE_END = "### For instructors"
MARKER = ".diffcourse-site"  # written into every built site, so that a rebuild may empty the folder


@dataclass
class BuildReport:
    out: Path
    pages: list[str]
    files: int
    seconds: float               # wall-clock time
    cpu_seconds: float           # this process's CPU time: the build's cost, whatever else the machine runs
    warnings: list[str] = field(default_factory=list)


def build_site(root: Path, out: Path, options: SiteOptions = SiteOptions()) -> BuildReport:
    """Build the site of the course in ``root`` into ``out`` (emptied first if it holds an earlier build)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    root, out = root.resolve(), out.resolve()
    chapters = discover_chapters(root)
    _prepare(out, root)
    env, renderer = template_env(), NotebookRenderer()
    pages = _course_pages(chapters)
    site = SiteMap(root=root, pages={p.source: p.path for p in pages if p.source}, blob_url=options.blob_url)
    site.built = {p.path for p in pages}
    _write_course_bodies(pages, root, chapters, env, site, options)
    files = 0
    for index, page in enumerate(pages):
        files += _write_page(pages, index, root, out, site, env, renderer, options)
    for path in sorted(site.copies):
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, out / path)
    copy_assets(out, renderer.highlight_css)
    warnings = [f"broken link: {b}" for b in sorted(site.broken)]
    warnings += [f"not on the site, shown unlinked (pass --repo to link it on GitHub): {u}"
                 for u in sorted(site.unlinked)]
    return BuildReport(out=out, pages=[p.path for p in pages], files=files + len(site.copies),
                       seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
                       warnings=warnings)


def _prepare(out: Path, root: Path) -> None:
    """Empty ``out`` if it holds an earlier build; refuse any other folder that is not empty."""
    if out == root or root.is_relative_to(out):
        raise CourseError(f"--out {out} would hold the course itself: choose a new folder, e.g. _site.")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise CourseError(f"{out} is not empty and is not a site built by diffcourse: choose another --out, "
                              "or empty it first.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("built by `python -m diffcourse site`; the folder is emptied on every build\n")


def _course_pages(chapters: list[Chapter]) -> list[Page]:
    """Every page in reading order, without bodies yet: notebook pages get theirs when written
    (`_write_page`), the landing, exercises and reference pages from `_write_course_bodies`."""
    pages = [Page("index.html", "Diffusion models, built and tested", "Home", "", source="README.md")]
    for ch in chapters:
        pages.append(Page(f"notebooks/{ch.stem}.html", f"{ch.number}. {ch.title}", f"{ch.number} · {ch.short_title}",
                          "", source=ch.lesson, section="lesson"))
        if ch.exercise:
            pages.append(Page(f"exercises/{ch.stem}.html", f"Exercises {ch.number}. {ch.title}",
                              f"{ch.number} · {ch.short_title} exercises", "", source=ch.exercise, section="exercise"))
    pages.append(Page("exercises/index.html", "Exercises", "How the exercises work", "", source="docs/EXERCISES.md"))
    pages.append(Page("reference.html", "Reference", "Reference", "", base="README.md"))
    return pages


def _write_course_bodies(pages: list[Page], root: Path, chapters: list[Chapter], env: Environment, site: SiteMap,
                         options: SiteOptions) -> None:
    """The bodies of the landing page, the exercises' overview and the reference (the first and last pages)."""
    rows = _chapter_rows(chapters, site)
    pages[0].body = _home(root, env, rows, chapters, options)
    pages[-2].body = _exercises_overview(root, env, [r for r in rows if r["exercise_href"]])
    reference = markdown_html(markdown_sections(root / "README.md", README_REFERENCE))
    pages[-1].body = env.get_template("reference.html.j2").render(sections=README_REFERENCE, content=Markup(reference))


def _chapter_rows(chapters: list[Chapter], site: SiteMap) -> list[dict]:
    """The course map's rows, with links as written in a page at the site's top level (a summary's own
    links, written for its lesson's folder, made to work there)."""
    return [{"chapter": ch,
             "summary": Markup(rewrite_links(markdown_html(ch.summary), ch.lesson, "index.html", site, set())),
             "lesson_href": f"notebooks/{ch.stem}.html",
             "exercise_href": f"exercises/{ch.stem}.html" if ch.exercise else None} for ch in chapters]


def _home(root: Path, env: Environment, rows: list[dict], chapters: list[Chapter], options: SiteOptions) -> str:
    intro = _readme_intro(root / "README.md")
    return env.get_template("home.html.j2").render(
        intro=Markup(markdown_html(intro)), chapters=rows, cpu_index=CPU_INDEX, first_lesson=chapters[0].lesson,
        clone=f"git clone https://github.com/{options.repo}.git" if options.repo else None)


def _readme_intro(readme: Path) -> str:
    """What the course is: the README's text between its title and its first section."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    intro = "\n".join(lines[1:end]).strip()
    if not lines or not lines[0].startswith("# ") or not intro:
        raise CourseError(f"{readme}: expected a '# ' title followed by the course's introduction before the first "
                          "'## ' section (the landing page shows it).")
    return intro


def _exercises_overview(root: Path, env: Environment, rows: list[dict]) -> str:
    guide = markdown_sections(root / "docs" / "EXERCISES.md", EXERCISES_GUIDE).split(EXERCISES_GUIDE_END)[0]
    rows = [dict(r, exercise_href=relative_url("exercises/index.html", r["exercise_href"])) for r in rows]
    return env.get_template("exercises.html.j2").render(chapters=rows, guide=Markup(markdown_html(guide)))


def _write_page(pages: list[Page], index: int, root: Path, out: Path, site: SiteMap, env: Environment,
                renderer: NotebookRenderer, options: SiteOptions) -> int:
    """Render and write ``pages[index]`` (and, for a notebook, its figures and the notebook itself).
    Returns the number of files written besides the page."""
    page, files = pages[index], {}
    folder = Path(page.path).parent
    if page.source and page.source.endswith(".ipynb"):
        how = f'To move it, <a href="#run-it">run the notebook</a>: <code>jupyter lab {page.source}</code>.'
        rendered = renderer.render(root / page.source, how_to_run=how)
        page.body, files = rendered.body, dict(rendered.files)
        files[Path(page.source).name] = (root / page.source).read_bytes()
    own = {(folder / name).as_posix() for name in files}
    page.body = rewrite_links(page.body, page.base or page.source or page.path, page.path, site, own)
    for name, data in files.items():
        (out / folder / name).parent.mkdir(parents=True, exist_ok=True)
        (out / folder / name).write_bytes(data)
    (out / page.path).parent.mkdir(parents=True, exist_ok=True)
    (out / page.path).write_text(render_page(env, pages, index, options), encoding="utf-8")
    return len(files)
