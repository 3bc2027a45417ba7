"""The course as a static website, built offline from the committed, executed notebooks.

``python -m diffcourse site --out _site`` writes a landing page (what the course is, the course map,
install), one page per lesson with its markdown, equations, code, printed outputs and figures as
committed, a page per exercise notebook (clean) with how to run it, and the README's reference parts.
Widgets show the frame the notebook saved. MathJax is bundled, every URL is relative: the folder reads
the same from a file system, an intranet or a public host. See CONTRIBUTING.md, "The course website".

Modules: `course` (what the site is built from), `notebook_html` (a notebook as HTML, via nbconvert),
`frozen_widgets` (a widget's saved state as static HTML), `links` (repository links made to work on
the site), `pages` (the frame of every page), `assets` (MathJax and stylesheets), `build` (all of it).
"""
from __future__ import annotations

from .build import BuildReport, build_site
from .course import Chapter, CourseError, discover_chapters
from .pages import SiteOptions

__all__ = ["build_site", "BuildReport", "SiteOptions", "CourseError", "Chapter", "discover_chapters"]
