"""The course's widgets, proven in a real JupyterLab in a real (headless) Chromium.

The lessons are discovered, not listed: every ``notebooks/*.ipynb`` whose committed outputs
contain a widget view is a case, and every widget view whose saved model tree holds an image
(a ``FrameScrubber`` and its subclasses: a slider swapping the PNG of a ``widgets.Image``) is a
scrubber to check. A new chapter is covered as soon as it is committed executed.

* ``test_committed_lessons_store_widget_state`` (no browser, not marked e2e): every widget view
  in a committed lesson has its model saved in the notebook metadata, so nothing can show
  "Error displaying widget: model not found".
* ``test_saved_widgets_render_before_running`` (e2e): open the committed lesson without running
  anything. Untrusted (as freshly cloned) Lab shows a safe fallback of each widget output;
  trusted, the widget manager redraws each scrubber from the saved state and its ``<img>`` shows
  exactly a PNG stored in the notebook. Never "Error displaying widget".
* ``test_widgets_live_after_run_all`` (e2e): clear all outputs, Run → Run All Cells in a fresh
  kernel, then in every scrubber move the slider with the keyboard (focus the handle, End or
  Home) and check the displayed frame really changes (new ``<img>`` source *and* new bytes).

Screenshots of every widget go to a temporary folder (its path is printed; pytest keeps the last
three runs' folders). ``DIFFCOURSE_UPDATE_SCREENSHOTS=1`` also rewrites the README pictures
``docs/images/<lesson>_widget.png`` (the lesson's last scrubber, a third of the way along).
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS_DIR = ROOT / "notebooks"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
ERROR_TEXT = "Error displaying widget"
IMG = "img.widget-image"
# The output area of a cell that shows a scrubber (an <img> widget inside the output).
WIDGET_OUTPUT = f".jp-OutputArea-output:has({IMG})"
README_IMAGE = "docs/images/{stem}_widget.png"
README_IMAGE_MAX_BYTES = 300_000


@dataclass(frozen=True)
class WidgetView:
    cell: int                    # index of the cell (all cells, markdown included) that displays it
    model_id: str
    saved: bool                  # its model is in the notebook's saved widget state
    images: tuple[str, ...]      # SHA-256 of every PNG saved under it (ImageModel values)
    text: str                    # the output's text/plain, what an untrusted notebook shows

    @property
    def is_scrubber(self) -> bool:
        # Without saved state, the scrubbers are told by their repr (a FrameScrubber is a VBox).
        return bool(self.images) if self.saved else self.text.startswith("VBox(")


@dataclass(frozen=True)
class Lesson:
    notebook: str                # path relative to the repo root
    views: tuple[WidgetView, ...]
    code_cells: int              # code cells with code in them: Run All gives each an execution count

    @property
    def id(self) -> str:
        return Path(self.notebook).stem

    @property
    def scrubbers(self) -> tuple[WidgetView, ...]:
        return tuple(v for v in self.views if v.is_scrubber)


def _source(cell) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def read_lesson(path: Path) -> Lesson:
    nb = json.loads(path.read_text())
    state = nb["metadata"].get("widgets", {}).get(STATE_MIME, {}).get("state", {})

    def images(model_id: str, seen: set) -> list[str]:
        if model_id in seen or model_id not in state:
            return []
        seen.add(model_id)
        m = state[model_id]
        if m["model_name"] == "ImageModel":
            buf = next((b for b in m.get("buffers", []) if b["path"] == ["value"]), None)
            return [hashlib.sha256(base64.b64decode(buf["data"])).hexdigest()] if buf else []
        found = []
        for child in m["state"].get("children", []):
            found += images(child.removeprefix("IPY_MODEL_"), seen)
        return found

    views = []
    for k, cell in enumerate(nb["cells"]):
        for o in cell.get("outputs", []):
            view = o.get("data", {}).get(VIEW_MIME)
            if view:
                text = o["data"].get("text/plain", "")
                views.append(WidgetView(cell=k, model_id=view["model_id"], saved=view["model_id"] in state,
                                        images=tuple(images(view["model_id"], set())),
                                        text=text if isinstance(text, str) else "".join(text)))
    code_cells = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and _source(c).strip())
    return Lesson(notebook=str(path.relative_to(ROOT)), views=tuple(views), code_cells=code_cells)


def discover_lessons() -> list[Lesson]:
    """The committed lessons that display widgets, in chapter order."""
    lessons = []
    for path in sorted(LESSONS_DIR.glob("*.ipynb")):
        try:
            lesson = read_lesson(path)
        except (OSError, ValueError, KeyError) as e:  # half-written notebook: nbval reports it
            print(f"e2e: skipping unreadable {path.name}: {e}")
            continue
        if lesson.views:
            lessons.append(lesson)
    return lessons


LESSONS = discover_lessons()
WITH_SCRUBBERS = [lesson for lesson in LESSONS if lesson.scrubbers]


# ---------------------------------------------------------------------------------------------
# Without a browser


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.id)
def test_committed_lessons_store_widget_state(lesson):
    missing = [v for v in lesson.views if not v.saved]
    assert not missing, (
        f"{lesson.notebook}: {len(missing)} widget output(s) (cells {sorted({v.cell for v in missing})}) "
        "have no saved model, so an opened notebook shows 'Error displaying widget: model not found'. "
        "Execute it with nbclient's store_widget_state=True (or Lab's 'Save Widget State Automatically').")
    for v in lesson.scrubbers:
        assert v.images, f"{lesson.notebook}, cell {v.cell}: a scrubber without a saved frame"


# ---------------------------------------------------------------------------------------------
# In the browser: helpers


def open_lesson(page, lab_server, lesson: Lesson, tag: str) -> str:
    """Open a fresh copy of the lesson in a new, empty workspace; wait until its kernel is idle.

    A never-used workspace name is a reset workspace without ``?reset``, which makes Lab reload
    the page (hard navigation) and would race with the test."""
    path = lab_server.stage(lesson.notebook, tag)
    page.goto(f"{lab_server.url}/lab/workspaces/e2e-{tag}-{uuid.uuid4().hex[:8]}/tree/{path}")
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
    wait_kernel_idle(page, timeout_s=120)
    # and the server agrees: this notebook's kernel is idle with the page's websocket attached
    deadline = time.monotonic() + 60
    while not any(sess["path"] == path and sess["kernel"]["execution_state"] == "idle"
                  and sess["kernel"]["connections"] >= 1 for sess in lab_server.api("/api/sessions")):
        assert time.monotonic() < deadline, f"no idle, connected kernel for {path}: {lab_server.api('/api/sessions')}"
        time.sleep(0.2)
    return path


def wait_kernel_idle(page, timeout_s: float) -> None:
    """The status bar says "<kernel> | Idle": the kernel is started, connected and not busy.

    (Run All before that makes Lab ask "Select Kernel"; the toolbar's execution indicator reads
    idle too early, before the kernel connection is up.)"""
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\| Idle$")).wait_for(timeout=timeout_s * 1000)


def run_menu(page, menu: str, item: str) -> None:
    """Click a main-menu entry, e.g. Run → Run All Cells, as a learner would."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
    page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$"))).click()


def assert_no_widget_errors(page) -> None:
    body = page.locator("body").text_content()  # includes off-screen (content-visibility) cells
    assert ERROR_TEXT not in body, _context(body, ERROR_TEXT)
    assert "model not found" not in body.lower(), _context(body, "model not found")


def _context(text: str, needle: str, width: int = 300) -> str:
    i = text.find(needle)
    return f"found {needle!r} on the page: …{text[max(0, i - width): i + width]}…"


# The bytes of an <img> (blob: or data: URL) as a SHA-256 hex digest, computed in the page.
IMG_DIGEST_JS = """async (img) => {
    const buf = await (await fetch(img.src)).arrayBuffer();
    const d = await crypto.subtle.digest('SHA-256', buf);
    return Array.from(new Uint8Array(d)).map(b => b.toString(16).padStart(2, '0')).join('');
}"""


def img_state(img) -> tuple[str, str]:
    """(src, SHA-256 of the displayed bytes) of a loaded widget image."""
    img.scroll_into_view_if_needed()
    img.page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img.get_attribute("src"), img.evaluate(IMG_DIGEST_JS)


def slider_handle(output):
    """The handle of the scrubber's slider (noUiSlider, keyboard-driven like a learner's Tab + keys)."""
    handles = output.locator(".widget-slider .noUi-handle")
    assert handles.count() >= 1, "no slider in the widget"
    return handles.first


def move_slider(handle, keys: tuple[str, ...]) -> tuple[int, int]:
    """Press keys on the focused handle; return the slider value (aria-valuenow) before and after."""
    handle.scroll_into_view_if_needed()
    before = round(float(handle.get_attribute("aria-valuenow")))
    handle.focus()
    for key in keys:
        handle.press(key)
    return before, round(float(handle.get_attribute("aria-valuenow")))


def wait_src_change(img, old_src: str, timeout_s: float = 20) -> None:
    img.page.wait_for_function(
        "([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0",
        arg=[img.element_handle(), old_src], timeout=timeout_s * 1000)


def screenshot(locator, path: Path, max_bytes: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    png = locator.screenshot(animations="disabled", caret="hide", scale="css")
    if max_bytes is not None and len(png) > max_bytes:
        png = _shrink(png)
    path.write_bytes(png)
    return path


def _shrink(png: bytes) -> bytes:
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=128)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def trust_notebook(page) -> None:
    """Command palette → "Trust Notebook" → confirm, as a learner would."""
    page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Shift+C")
    page.locator(".lm-CommandPalette-input").fill("Trust Notebook")
    page.locator(".lm-CommandPalette-item[data-command='notebook:trust']").first.click()
    page.get_by_role("button", name=re.compile("Confirm Trusting this notebook|^Trust$")).click()


def wait_run_all(page, lesson: Lesson, timeout_s: float) -> None:
    """Wait until every code cell has an execution count ("[n]:", none pending "[*]:").

    A cell that raises stops Run All: its traceback is reported at once."""
    deadline = time.monotonic() + timeout_s
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt")
    texts: list[str] = []
    while True:
        texts = [t.strip() for t in prompts.all_text_contents()]  # not inner text: off-screen cells
        done = sum(bool(re.fullmatch(r"\[\d+\]:", t)) for t in texts)
        if done >= lesson.code_cells and "[*]:" not in texts:
            return
        errors = [e for e in page.locator(".jp-RenderedText").all_text_contents() if "Traceback" in e]
        assert not errors, f"a cell raised while running {lesson.notebook}:\n{errors[0][-3000:]}"
        assert time.monotonic() < deadline, (
            f"Run All did not finish within {timeout_s:.0f} s: {done} of {lesson.code_cells} cells ran")
        time.sleep(1)


@pytest.fixture
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


# ---------------------------------------------------------------------------------------------
# In the browser: tests


@pytest.mark.e2e
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.id)
def test_saved_widgets_render_before_running(page, lab_server, lesson, shots):
    """The committed notebook, opened but not run, never shows "Error displaying widget".

    * Freshly cloned, a notebook is *untrusted* (its signature is not in the learner's database),
      and Lab renders each widget output with a safe mimetype instead of the widget view (a
      static fallback picture when the widget offers one, else its ``text/plain`` repr).
    * Trusted (command "Trust Notebook"), the widget manager draws each scrubber from the state
      saved in the notebook metadata: its ``<img>`` shows a PNG stored in the notebook.
    """
    t0 = time.monotonic()
    open_lesson(page, lab_server, lesson, tag="saved")
    cells = page.locator(".jp-Notebook .jp-Cell")
    shown = []
    for i, view in enumerate(lesson.views):
        output = cells.nth(view.cell).locator(".jp-OutputArea-output").first
        output.wait_for(state="attached")
        output.scroll_into_view_if_needed()
        shown.append(output.get_attribute("data-mime-type") or "?")
        if view.is_scrubber:
            screenshot(cells.nth(view.cell).locator(".jp-OutputArea"), shots / f"{lesson.id}_untrusted_{i}.png")
    assert_no_widget_errors(page)
    assert page.locator(IMG).count() == 0, "an untrusted notebook should not render widget views"

    trust_notebook(page)
    expected = [v.images for v in lesson.scrubbers]
    images = page.locator(IMG)
    if expected:
        images.nth(len(expected) - 1).wait_for(state="attached", timeout=60_000)
    # every widget view (progress bars too) is redrawn from the saved state
    page.wait_for_function(
        "(n) => document.querySelectorAll('.jp-OutputArea-output:has(.jupyter-widgets)').length >= n",
        arg=len(lesson.views), timeout=60_000)
    assert images.count() == len(expected)
    outputs = page.locator(WIDGET_OUTPUT)
    for i, digests in enumerate(expected):
        _, digest = img_state(outputs.nth(i).locator(IMG))
        assert digest in digests, f"scrubber {i}: the displayed image is not a PNG saved in the notebook"
        screenshot(outputs.nth(i), shots / f"{lesson.id}_saved_{i}.png")
    assert_no_widget_errors(page)
    print(f"\n{lesson.id}: untrusted shows {shown}; trusted shows the saved frames of {len(expected)} "
          f"scrubber(s); {time.monotonic() - t0:.1f} s; screenshots in {shots}")


@pytest.mark.e2e
@pytest.mark.parametrize("lesson", WITH_SCRUBBERS, ids=lambda lesson: lesson.id)
def test_widgets_live_after_run_all(page, lab_server, lesson, shots):
    """Run All Cells in a fresh kernel, then every scrubber's slider changes the displayed frame."""
    t0 = time.monotonic()
    timeout_s = float(os.environ.get("DIFFCOURSE_E2E_RUN_TIMEOUT", 900))
    open_lesson(page, lab_server, lesson, tag="live")
    # Clear the saved outputs first, so every widget found below was drawn by the live kernel.
    run_menu(page, "Edit", "Clear Outputs of All Cells")
    page.locator(IMG).first.wait_for(state="detached", timeout=30_000)
    run_menu(page, "Run", "Run All Cells")
    wait_run_all(page, lesson, timeout_s)
    wait_kernel_idle(page, timeout_s=60)
    t_run = time.monotonic() - t0
    n = len(lesson.scrubbers)
    page.locator(IMG).nth(n - 1).wait_for(state="attached", timeout=30_000)
    assert page.locator(IMG).count() == n, f"expected {n} scrubber(s), as in the committed notebook"
    outputs = page.locator(WIDGET_OUTPUT)
    moves = []
    for i in range(n):
        output = outputs.nth(i)
        img = output.locator(IMG)
        handle = slider_handle(output)
        src0, digest0 = img_state(img)
        at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        before, after = move_slider(handle, ("Home",) if at_end else ("End",))
        assert after != before, f"scrubber {i}: the slider did not move ({before})"
        wait_src_change(img, src0)
        src1, digest1 = img_state(img)
        assert digest1 != digest0, f"scrubber {i}: the <img> was replaced but shows the same frame"
        moves.append(f"{before}->{after}")
        screenshot(output, shots / f"{lesson.id}_live_{i}.png")
    assert_no_widget_errors(page)
    if os.environ.get("DIFFCOURSE_UPDATE_SCREENSHOTS") == "1":
        # For the README: the last scrubber a third of the way along (the noise is visible there).
        output = outputs.nth(n - 1)
        img, handle = output.locator(IMG), slider_handle(output)
        src0, _ = img_state(img)
        third = round(float(handle.get_attribute("aria-valuemax")) / 3)
        move_slider(handle, ("Home",) + ("ArrowRight",) * third)
        wait_src_change(img, src0)
        img_state(img)
        path = screenshot(output, ROOT / README_IMAGE.format(stem=lesson.id), max_bytes=README_IMAGE_MAX_BYTES)
        assert path.stat().st_size < README_IMAGE_MAX_BYTES
    print(f"\n{lesson.id}: run all {t_run:.1f} s; sliders {moves}; total {time.monotonic() - t0:.1f} s; "
          f"screenshots in {shots}")
