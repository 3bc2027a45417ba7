"""The course website, read in a real (headless) Chromium from the file system, as a learner would.

The site is built here from the repository as it is (``build_site``, as ``python -m diffcourse site``
does; ``DIFFCOURSE_SITE=DIR`` checks an existing build instead, e.g. one about to be published). Then
every page is opened from ``file://`` — the strictest way to read it: no server, no network — and must

* log no console error, fail no request, and ask for nothing that is not in the site;
* have its equations typeset by the bundled MathJax: math elements present where the source has
  LaTeX, no TeX error, no raw ``$$``, ``\\(`` or ``$…$`` left in the text;
* load every image, and have every link inside the site lead to a file that exists (and to an
  element with that id, for a ``#fragment``);
* for a lesson: show the lesson's title, every figure and table of the notebook, and numbers that the
  notebook printed — read from the committed notebook now, so a stale site fails.

Every page's screenshot goes to a temporary folder (its path is printed with ``-s``).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
from bs4 import BeautifulSoup

from diffcourse.site import build_site

ROOT = Path(__file__).resolve().parents[2]
SITE_ENV = "DIFFCOURSE_SITE"
BUILD_CPU_BUDGET_S = 60  # CPU seconds: with the page checks, well inside the ~2 minutes the site may add to the suite
TYPESET = "html[data-mathjax='typeset']"  # set by _static/mathjax-config.js once MathJax is done
PAGE_TIMEOUT_MS = 120_000  # to load a page and typeset it: seconds when quiet, generous for a busy 2-core machine
_DECIMAL, _DIGIT = re.compile(r"\d\.\d"), re.compile(r"\d")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$", re.MULTILINE)

# Runs in the page: the text a reader sees outside code and typeset math.
PROSE_JS = """() => {
    const body = document.querySelector('.site-main').cloneNode(true);
    body.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
    return body.textContent;
}"""
# Runs in the page: every image that did not load.
BROKEN_IMAGES_JS = """() => Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src'))"""


@dataclass(frozen=True)
class LessonFacts:
    """What the committed notebook says its page must show."""
    title: str
    printed: tuple[str, ...]     # lines it printed with a number, a decimal one if any (whitespace collapsed)
    figures: int                 # image outputs
    tables: int                  # Markdown tables, in its cells and in its outputs


def _squash(text: str) -> str:
    return " ".join(text.split())


def lesson_facts(path: Path) -> LessonFacts:
    nb = nbformat.read(path, as_version=4)
    first = next(c.source for c in nb.cells if c.cell_type == "markdown")
    title = first.strip().splitlines()[0].lstrip("# ").strip()
    checked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    printed = []
    for cell in checked or [c for c in nb.cells if c.cell_type == "code"]:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
        plain = [ln for ln in text.splitlines() if "\x1b" not in ln and "\r" not in ln]  # no colours, no progress bars
        line = next((ln for ln in plain if _DECIMAL.search(ln)), None) or next(
            (ln for ln in plain if _DIGIT.search(ln)), None)
        if line:
            printed.append(_squash(line))
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    markdown += ["".join(o.data["text/markdown"]) for c in nb.cells for o in c.get("outputs", [])
                 if "text/markdown" in o.get("data", {})]
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    tables = sum(len(_TABLE_RULE.findall(text)) for text in markdown)
    return LessonFacts(title=title, printed=tuple(printed[:8]), figures=figures, tables=tables)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if os.environ.get(SITE_ENV):
        return Path(os.environ[SITE_ENV]).resolve()
    report = build_site(ROOT, tmp_path_factory.mktemp("site") / "_site")
    print(f"\nsite: {len(report.pages)} pages, {report.files} files built in {report.seconds:.1f} s "
          f"({report.cpu_seconds:.1f} s of CPU) into {report.out}")
    assert report.cpu_seconds < BUILD_CPU_BUDGET_S, (  # CPU, not wall time: a busy machine must not fail it
        f"the site took {report.cpu_seconds:.0f} s of CPU to build (budget {BUILD_CPU_BUDGET_S} s)")
    assert not [w for w in report.warnings if w.startswith("broken link")], report.warnings
    return report.out


class PageIds:
    """The ids of each page of the site, read once per page, for checking ``#fragment`` links."""

    def __init__(self) -> None:
        self._ids: dict[Path, set[str]] = {}

    def __call__(self, path: Path) -> set[str]:
        if path not in self._ids:
            soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
            self._ids[path] = {tag["id"] for tag in soup.find_all(id=True)}
        return self._ids[path]


def link_problems(hrefs: list[str], site: Path, ids: PageIds) -> list[str]:
    """The links (resolved ``file://`` URLs) that lead nowhere inside the site."""
    problems = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.scheme != "file":
            continue  # https: links (papers, Binder) leave the site; a reader's browser follows them
        target, anchors = Path(unquote(parts.path)), {parts.fragment, unquote(parts.fragment)}
        if not target.is_relative_to(site) or not target.is_file():
            problems.append(f"link to a missing file: {href}")
        elif parts.fragment and target.suffix == ".html" and not ids(target) & anchors:
            problems.append(f"link to a missing anchor: {href}")
    return problems


def math_problems(page, source_has_math: bool) -> list[str]:
    problems = []
    if source_has_math and page.locator("mjx-container").count() == 0:
        problems.append("the page's LaTeX was not typeset: no MathJax element")
    errors = page.locator("mjx-merror")
    if errors.count():
        problems.append(f"{errors.count()} TeX error(s), the first: {errors.first.inner_text()}")
    prose = page.evaluate(PROSE_JS)
    for raw in list(dict.fromkeys(re.findall(r"\$\$|\\\(|\\\[|\$[^$\s][^$\n]{0,80}?\$", prose)))[:3]:
        problems.append(f"raw LaTeX left in the text: {raw!r}")
    return problems


def lesson_problems(page, facts: LessonFacts) -> list[str]:
    text = _squash(page.locator("body").inner_text())
    problems = [] if _squash(facts.title) in text else [f"the lesson's title {facts.title!r} is not on the page"]
    problems += [f"printed line missing (stale site?): {line!r}" for line in facts.printed if line not in text]
    if not facts.printed:
        problems.append("the notebook printed no number to compare with the page: is it committed executed?")
    images = page.locator(".page-content img").count()
    if images < facts.figures:
        problems.append(f"{images} images on the page, the notebook has {facts.figures} figures")
    if page.locator(".page-content table").count() < facts.tables:
        problems.append(f"{page.locator('.page-content table').count()} tables, the notebook has {facts.tables}")
    return problems


def check_page(page, path: Path, site: Path, ids: PageIds, facts: LessonFacts | None) -> list[str]:
    """Everything wrong with one page, as sentences (none: the page is fine)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.errors = []
    try:
        page.goto(path.as_uri())
        page.wait_for_selector(TYPESET, state="attached")
    except PlaywrightTimeout as e:  # reported with the page's other problems, and the next page is read
        return [f"not loaded and typeset within {PAGE_TIMEOUT_MS // 1000} s: {e.message.splitlines()[0]}"] + page.errors
    problems = list(page.errors)
    problems += [f"image did not load: {src}" for src in page.evaluate(BROKEN_IMAGES_JS)]
    problems += link_problems(page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)"), site, ids)
    source_has_math = "$" in path.read_text(encoding="utf-8")
    problems += math_problems(page, source_has_math)
    if facts is not None:
        problems += lesson_problems(page, facts)
    return problems


def _watch(page, site: Path) -> None:
    """Record console errors, page errors, failed requests and any request for a file outside the site."""
    page.on("console", lambda m: page.errors.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: page.errors.append(f"request failed: {r.url} ({r.failure})"))

    def outside(request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in ("file", "data", "blob") or not Path(unquote(parts.path)).is_relative_to(site):
            page.errors.append(f"asked for something outside the site: {request.url}")

    page.on("request", outside)


def _screenshot(page, path: Path) -> None:
    """A picture of the page for a person to look at; on a machine too busy to take it, a note instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.screenshot(path=path, timeout=30_000)
    except PlaywrightTimeout:
        print(f"no screenshot of {path.name}: the machine was too busy")


@pytest.mark.e2e
def test_every_page_reads_in_chromium(browser, site, tmp_path_factory):
    lessons = {f"notebooks/{p.stem}.html": lesson_facts(p) for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))}
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if "_static" not in p.parts)
    missing = [rel for rel in ["index.html", "reference.html", "exercises/index.html", *lessons] if rel not in pages]
    assert not missing, f"pages missing from the site in {site}: {missing}"
    shots = tmp_path_factory.mktemp("site-screenshots")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    page, ids, found, t0 = context.new_page(), PageIds(), {}, time.monotonic()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.errors = []
    _watch(page, site)
    try:
        for rel in pages:
            found[rel] = check_page(page, site / rel, site, ids, lessons.get(rel))
            _screenshot(page, shots / (rel.replace("/", "__") + ".png"))
    finally:
        context.close()
    report = "\n".join(f"{rel}:\n  " + "\n  ".join(p) for rel, p in found.items() if p)
    print(f"\n{len(pages)} pages read in {time.monotonic() - t0:.1f} s; screenshots in {shots}")
    assert not report, f"problems on the site in {site}:\n{report}"
