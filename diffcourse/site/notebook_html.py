"""A notebook as an HTML fragment: its markdown, equations, code, printed outputs and figures as committed.

nbconvert does the conversion, with the cell markup of its JupyterLab template (so JupyterLab's
stylesheet, copied into the site, styles it) but without its page head, which would load require.js,
MathJax and the widget renderer from CDNs: the site's own page template wraps the fragment instead.
Figures are written as the PNG files the notebook holds (nbconvert's ``ExtractOutputPreprocessor``),
and widgets become their saved frames (`freeze_widgets`). Nothing is executed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.filters import markdown2html_mistune
from traitlets.config import Config

from .frozen_widgets import freeze_widgets

__all__ = ["RenderedNotebook", "NotebookRenderer", "markdown_html", "unescape_table_pipes"]

TEMPLATES = Path(__file__).parent / "templates"
CELLS_TEMPLATE = "diffcourse_cells"  # templates/nbconvert/diffcourse_cells: the lab template's cells, no page head
_TABLE_CELL = re.compile(r"(<t[dh]\b[^>]*>)(.*?)(</t[dh]>)", re.DOTALL)


@dataclass(frozen=True)
class RenderedNotebook:
    body: str                    # the cells as HTML
    files: dict[str, bytes]      # figure files, by path relative to the page's folder


class NotebookRenderer:
    """One nbconvert exporter for the whole build (creating one costs more than converting a notebook)."""

    def __init__(self) -> None:
        config = Config({"ExtractOutputPreprocessor": {"enabled": True}})
        self.exporter = HTMLExporter(config=config, template_name=CELLS_TEMPLATE,
                                     extra_template_basedirs=[str(TEMPLATES / "nbconvert")])
        self.highlight_css = ""

    def render(self, path: Path, how_to_run: str) -> RenderedNotebook:
        """Convert the notebook at ``path``; its figures go to ``<stem>_files/`` beside the page."""
        nb = nbformat.read(path, as_version=4)
        files_dir = f"{path.stem}_files"
        frames = freeze_widgets(nb, files_dir, how_to_run)
        resources = {"unique_key": path.stem, "output_files_dir": files_dir, "metadata": {"name": path.stem}}
        body, resources = self.exporter.from_notebook_node(nb, resources=resources)
        if not self.highlight_css:
            self.highlight_css = "\n".join(resources.get("inlining", {}).get("css", []))
        return RenderedNotebook(body=unescape_table_pipes(body), files={**resources.get("outputs", {}), **frames})


def markdown_html(text: str) -> str:
    """Markdown (with LaTeX left for MathJax) as HTML, styled like a notebook's markdown cell."""
    html = unescape_table_pipes(markdown2html_mistune(text))
    return f'<div class="jp-RenderedHTMLCommon jp-RenderedMarkdown">{html}</div>'


def unescape_table_pipes(html: str) -> str:
    r"""``\|`` in a table cell is a literal ``|`` (GitHub-flavoured Markdown), also inside code, where mistune
    keeps the backslash: ``ddpm\|ddim`` in a command table reads ``ddpm|ddim``, as on GitHub."""
    return _TABLE_CELL.sub(lambda m: m.group(1) + m.group(2).replace("\\|", "|") + m.group(3), html)
