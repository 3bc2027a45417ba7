"""The pages of the site and the frame around each: header, chapter list, previous / next, launch lines.

Every page is a `Page` — where it goes, its title, its body as HTML and, for a notebook's page, the
notebook it shows. `render_page` puts a body into ``templates/layout.html.j2``; every URL it writes is
relative, so the site reads the same from a file system, an intranet server or a public host.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from .course import CourseError
from .links import relative_url

__all__ = ["SiteOptions", "Page", "NavLink", "template_env", "render_page", "launch_context"]

TEMPLATES = Path(__file__).parent / "templates"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SiteOptions:
    """What the site may say about where the course lives. Without ``repo`` (the default, while the
    repository is private) the pages name no host: no clone URL, no GitHub, Binder or Colab links."""
    repo: str | None = None      # "OWNER/NAME" on GitHub: turns on the clone line, source links and badges
    branch: str = "main"

    def __post_init__(self) -> None:
        if self.repo is not None and not _REPO.match(self.repo):
            raise CourseError(f"--repo {self.repo!r}: give the GitHub repository as OWNER/NAME, e.g. myorg/diffcourse.")

    @property
    def blob_url(self) -> str | None:
        return f"https://github.com/{self.repo}/blob/{self.branch}" if self.repo else None

    def binder_url(self, notebook: str) -> str:
        return f"https://mybinder.org/v2/gh/{self.repo}/{self.branch}?labpath={quote(notebook, safe='')}"

    def colab_url(self, notebook: str) -> str:
        return f"https://colab.research.google.com/github/{self.repo}/blob/{self.branch}/{notebook}"


@dataclass
class Page:
    path: str                    # where it goes in the site: "notebooks/03_ddim.html"
    title: str                   # the browser tab's title
    nav_title: str               # its name in "previous / next" and in the sidebar
    body: str                    # the content, HTML
    source: str | None = None    # the repository file it shows ("notebooks/03_ddim.ipynb"), if any
    section: str = "course"      # "lesson", "exercise" or "course": where the sidebar lists it
    base: str | None = None      # the repository file its links are relative to (default: source)


@dataclass(frozen=True)
class NavLink:
    title: str
    href: str
    current: bool = False


def template_env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(),
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_page(env: jinja2.Environment, pages: list[Page], index: int, options: SiteOptions) -> str:
    """The full HTML of ``pages[index]``: the layout with its sidebar, previous / next and launch lines."""
    page = pages[index]

    def link(other: Page | None) -> NavLink | None:
        return NavLink(other.nav_title, relative_url(page.path, other.path), other is page) if other else None

    return env.get_template("layout.html.j2").render(
        page=page, root=relative_url(page.path, "index.html").removesuffix("index.html"),
        previous=link(pages[index - 1]) if index > 0 else None,
        next=link(pages[index + 1]) if index + 1 < len(pages) else None,
        lessons=[link(p) for p in pages if p.section == "lesson"],
        exercises=[link(p) for p in pages if p.section == "exercise"],
        launch=launch_context(page, options) if page.source and page.source.endswith(".ipynb") else None,
        body=Markup(page.body))


def launch_context(page: Page, options: SiteOptions) -> dict:
    """What the "Run it yourself" lines of a notebook's page need: the commands and the links."""
    notebook, repo = page.source, options.repo
    assert notebook is not None
    return {
        "notebook": notebook,
        "download": relative_url(page.path, notebook),
        "clone": f"git clone https://github.com/{repo}.git diffcourse && cd diffcourse" if repo else None,
        "cpu_index": CPU_INDEX,
        "source_url": f"{options.blob_url}/{notebook}" if options.repo else None,
        "binder_url": options.binder_url(notebook) if options.repo else None,
        "colab_url": options.colab_url(notebook) if options.repo else None,
        "repo_git": f"https://github.com/{options.repo}.git" if options.repo else None,
    }
