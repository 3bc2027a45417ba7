"""Links between pages: a link written for the repository, made to work on the site.

A lesson links to ``02_ddpm.ipynb`` or ``../exercises/03_ddim.ipynb``, the README to
``docs/EXERCISES.md`` or ``docs/images/samples.png``: paths in the repository, relative to the file
that holds them. On the site, each is resolved against that file's folder and then

* a file that the site shows as a page (a notebook, the README, docs/EXERCISES.md) becomes a link to
  that page, its ``#anchor`` kept;
* a picture of the repository is copied into the site at the same path and shown from there;
* any other file of the repository links to it on GitHub when the site knows the repository
  (``--repo``); otherwise its text stays, unlinked, with the path as a tooltip, since the site has no
  copy of it.

Inline code naming such a file from the repository root (``exercises/03_ddim.ipynb``, as the lessons
write it) becomes a link to its page too.

Links with a scheme (``https:``, ``mailto:``), same-page anchors and data URLs are left alone, and
so are links that already lead to a page of the site or to a file a page writes beside itself (its
figures).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bs4 import BeautifulSoup

__all__ = ["SiteMap", "relative_url", "rewrite_links"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"}


@dataclass
class SiteMap:
    """Where the repository's files are on the site."""
    root: Path                          # the repository
    pages: dict[str, str]               # repository path -> site path of the page that shows it
    built: set[str] = field(default_factory=set)       # the site paths of every page
    blob_url: str | None = None         # "https://github.com/OWNER/NAME/blob/BRANCH", or None
    copies: set[str] = field(default_factory=set)      # repository files to copy into the site as they are
    unlinked: set[str] = field(default_factory=set)    # repository files linked to but not on the site
    broken: set[str] = field(default_factory=set)      # "page: target" for links to files that do not exist


def relative_url(from_page: str, to: str) -> str:
    """The URL of site path ``to`` as written in the page at site path ``from_page``."""
    return posixpath.relpath(to, posixpath.dirname(from_page) or ".")


def rewrite_links(fragment: str, source: str, page: str, site: SiteMap, own_files: set[str]) -> str:
    """``fragment``, the HTML of the repository file ``source``, with its links made to work on the page
    at site path ``page``. ``own_files`` are the site paths the page writes beside itself."""
    soup = BeautifulSoup(fragment, "html.parser")
    for tag, attribute in (("a", "href"), ("img", "src")):
        for element in soup.find_all(tag, attrs={attribute: True}):
            url = _site_url(element[attribute], source, page, site, own_files, is_image=tag == "img")
            if url is None:
                element["class"] = element.get("class", []) + ["not-on-site"]
                element["title"] = f"{element[attribute]} (in the course repository)"
                element.name, element.attrs = "span", {k: element[k] for k in ("class", "title")}
            else:
                element[attribute] = url
    _link_code_paths(soup, page, site)
    for img in soup.find_all("img", alt=False):
        img["alt"] = "a figure of the notebook"
    return str(soup)


def _link_code_paths(soup: BeautifulSoup, page: str, site: SiteMap) -> None:
    """Inline code that names a notebook the site shows (``exercises/03_ddim.ipynb``, as lessons write it,
    from the repository root) becomes a link to its page."""
    for code in soup.find_all("code"):
        target = code.get_text().strip()
        if target in site.pages and not code.find_parent(["a", "pre"]):
            code.wrap(soup.new_tag("a", href=relative_url(page, site.pages[target])))


def _site_url(url: str, source: str, page: str, site: SiteMap, own_files: set[str], is_image: bool) -> str | None:
    """The URL to write instead of ``url`` (itself when it needs no change), or None to unlink it."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:
        return url
    anchor = f"#{parts.fragment}" if parts.fragment else ""
    on_site = posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(parts.path)))
    if on_site in own_files or on_site in site.built:
        return url
    target = posixpath.normpath(posixpath.join(posixpath.dirname(source), unquote(parts.path)))
    if target in site.pages:
        return relative_url(page, site.pages[target]) + anchor
    if not (site.root / target).exists() or target.startswith("../"):
        site.broken.add(f"{page}: {url}")
        return url
    if is_image or Path(target).suffix.lower() in IMAGE_SUFFIXES:
        site.copies.add(target)
        return relative_url(page, target)
    if site.blob_url:
        return f"{site.blob_url}/{target}{anchor}"
    site.unlinked.add(target)
    return None
