"""What the site is built from: the chapters found in the repository, and parts of its Markdown files.

The chapters are *discovered*, never listed: every ``notebooks/NN_name.ipynb`` is a lesson, and
``exercises/NN_name.ipynb``, where it exists, is its exercise notebook. A new chapter appears on the
site as soon as its lesson is committed. A lesson's title is the first ``# `` heading of its first
markdown cell, by the course's convention ``# Chapter 3 — DDIM: fast, deterministic sampling …``;
its summary is the first paragraph under that heading.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["Chapter", "CourseError", "discover_chapters", "read_chapter", "markdown_sections"]

LESSONS_DIR = "notebooks"
EXERCISES_DIR = "exercises"
_STEM = re.compile(r"^(\d+)_[A-Za-z0-9_]+$")
_CHAPTER_PREFIX = re.compile(r"^Chapter\s+\d+\s*(?:exercises\s*)?[—–-]\s*", re.IGNORECASE)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


class CourseError(ValueError):
    """The repository does not have what the site is built from; the message says what to fix."""


@dataclass(frozen=True)
class Chapter:
    number: int
    stem: str                    # "03_ddim": the file name of the lesson and of its exercises
    title: str                   # "DDIM: fast, deterministic sampling with the same network"
    summary: str                 # the lesson's first paragraph (Markdown, may hold LaTeX)
    lesson: str                  # "notebooks/03_ddim.ipynb", relative to the repository root
    exercise: str | None         # "exercises/03_ddim.ipynb", or None when the chapter has none yet

    @property
    def short_title(self) -> str:
        """The title up to its first colon or comma: "DDIM", "Score-based models"."""
        return re.split(r"[:,]", self.title)[0].strip()


def discover_chapters(root: Path) -> list[Chapter]:
    """Every lesson in ``root/notebooks``, in chapter order."""
    folder = root / LESSONS_DIR
    paths = sorted(p for p in folder.glob("*.ipynb") if _STEM.match(p.stem))
    if not paths:
        raise CourseError(f"no lesson notebooks (NN_name.ipynb) in {folder}: build the site from the course's "
                          "repository root (--root).")
    chapters = sorted((read_chapter(root, path) for path in paths), key=lambda c: c.number)
    numbers = [c.number for c in chapters]
    if len(set(numbers)) != len(numbers):
        raise CourseError(f"two lessons share a chapter number in {folder}: {[c.lesson for c in chapters]}")
    return chapters


def read_chapter(root: Path, path: Path) -> Chapter:
    """The chapter of one lesson notebook: its number, title and summary, and its exercise notebook."""
    nb = nbformat.read(path, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    lines = first.strip().splitlines()
    match = _HEADING.match(lines[0]) if lines else None
    if not match or len(match.group(1)) != 1:
        raise CourseError(f"{path}: the first markdown cell must start with the lesson's title as a '# ' heading "
                          "(e.g. '# Chapter 3 — DDIM: fast sampling').")
    exercise = root / EXERCISES_DIR / path.name
    return Chapter(number=int(path.stem.split("_")[0]), stem=path.stem,
                   title=_CHAPTER_PREFIX.sub("", match.group(2)).strip(),
                   summary=_first_paragraph(lines[1:]),
                   lesson=f"{LESSONS_DIR}/{path.name}",
                   exercise=f"{EXERCISES_DIR}/{path.name}" if exercise.exists() else None)


def _first_paragraph(lines: list[str]) -> str:
    paragraph: list[str] = []
    for line in lines:
        if line.strip():
            paragraph.append(line)
        elif paragraph:
            break
    return "\n".join(paragraph)


def markdown_sections(path: Path, titles: list[str]) -> str:
    """The sections of a Markdown file with these headings, in the order given, each from its heading up to
    the next heading of the same or a higher level. A title matches a heading that starts with it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    headings = _headings(lines)
    parts = []
    for title in titles:
        found = [(i, level) for i, level, text in headings if text.startswith(title)]
        if not found:
            present = ", ".join(repr(text) for _, _, text in headings)
            raise CourseError(f"{path} has no section '{title}' (its headings: {present}). Rename it back, or "
                              "change the section list in diffcourse/site/build.py.")
        start, level = found[0]
        end = next((i for i, lv, _ in headings if i > start and lv <= level), len(lines))
        parts.append("\n".join(lines[start:end]).strip())
    return "\n\n".join(parts)


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, text) of every ATX heading outside fenced code blocks."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append((i, len(match.group(1)), match.group(2)))
    return found
