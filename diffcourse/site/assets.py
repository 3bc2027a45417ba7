"""The files every page loads, copied into ``_static/`` so that the site needs no network to be read.

* MathJax 3 (its combined TeX → CommonHTML component and its web fonts) comes from the PyPI package
  ``django-static-mathjax``, which is the official ``mathjax-full`` 3.2.2 release as static files with
  no dependencies (Django is not needed to use them; see CONTRIBUTING.md for why this package).
* JupyterLab's stylesheet for rendered notebooks comes from nbconvert's installed ``lab`` template.
* The site's own stylesheet and MathJax configuration come from ``templates/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from jupyter_core.paths import jupyter_path

from .course import CourseError

__all__ = ["STATIC", "copy_assets", "mathjax_dir"]

STATIC = "_static"
TEMPLATES = Path(__file__).parent / "templates"
MATHJAX_SCRIPT = "tex-chtml-full.js"        # TeX input, CommonHTML output, every TeX extension built in
MATHJAX_FONTS = "output/chtml/fonts/woff-v2"  # where that script looks for its fonts, relative to itself
MATHJAX_VERSION = "3.2.2"
INSTALL_HINT = "pip install -r requirements-dev.txt"


def mathjax_dir() -> Path:
    """The installed MathJax 3 release (the ``es5`` folder of ``mathjax-full``)."""
    try:
        import mathjax  # the django-static-mathjax package
    except ImportError:
        raise CourseError(f"MathJax is not installed, and the site bundles it instead of using a CDN: "
                          f"`{INSTALL_HINT}` (it brings django-static-mathjax).") from None
    folder = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    script = folder / MATHJAX_SCRIPT
    if not script.is_file() or f'VERSION="{MATHJAX_VERSION}"' not in script.read_text(encoding="utf-8"):
        raise CourseError(f"{script} is missing or is not MathJax {MATHJAX_VERSION}: `{INSTALL_HINT}`.")
    return folder


def _lab_stylesheets() -> list[Path]:
    """JupyterLab's notebook stylesheet and light theme, from nbconvert's ``lab`` template."""
    for base in jupyter_path("nbconvert", "templates"):
        static = Path(base) / "lab" / "static"
        if (static / "index.css").is_file():
            return [static / "index.css", static / "theme-light.css"]
    raise CourseError("nbconvert's 'lab' template is not installed: `pip install -r requirements.txt`.")


def copy_assets(out: Path, highlight_css: str) -> None:
    """Write ``out/_static``: MathJax, the stylesheets, the MathJax configuration."""
    static = out / STATIC
    source = mathjax_dir()
    (static / "mathjax").mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / MATHJAX_SCRIPT, static / "mathjax" / MATHJAX_SCRIPT)
    shutil.copytree(source / MATHJAX_FONTS, static / "mathjax" / MATHJAX_FONTS, dirs_exist_ok=True)
    shutil.copy2(source.parent / "LICENSE", static / "mathjax" / "LICENSE")
    for css, name in zip(_lab_stylesheets(), ("jupyterlab.css", "jupyterlab-theme-light.css")):
        shutil.copy2(css, static / name)
    (static / "highlight.css").write_text(highlight_css, encoding="utf-8")
    for name in ("site.css", "mathjax-config.js"):
        shutil.copy2(TEMPLATES / name, static / name)
