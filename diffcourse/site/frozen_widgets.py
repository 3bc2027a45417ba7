"""A widget on a static page: the frame the notebook saved, and its controls drawn as they were, disabled.

Widgets need a running kernel, which a static page does not have. A committed lesson stores every
widget's last state in its metadata (``application/vnd.jupyter.widget-state+json``): the scrubbers'
sliders and menus with their values, and the PNG their ``widgets.Image`` showed. `freeze_widgets`
replaces each widget output of a notebook by that state rendered as plain HTML — the saved frame as
an image file, the menus as disabled ``<select>``, the sliders as disabled ``<input type="range">`` at
their saved position — with a line saying how to get the live slider.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from bs4 import BeautifulSoup
from nbformat import NotebookNode

__all__ = ["VIEW_MIME", "STATE_MIME", "freeze_widgets"]

VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
_BOXES = {"VBoxModel": "vbox", "HBoxModel": "hbox", "BoxModel": "vbox", "GridBoxModel": "hbox"}
_MENUS = {"DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"}
_SLIDERS = {"IntSliderModel", "FloatSliderModel", "FloatLogSliderModel"}


@dataclass
class _Frozen:
    """The image files that freezing one widget output writes."""
    files_dir: str
    prefix: str
    images: dict[str, bytes] = field(default_factory=dict)

    def add_image(self, png: bytes) -> str:
        name = f"{self.files_dir}/{self.prefix}_{len(self.images)}.png"
        self.images[name] = png
        return name


def freeze_widgets(nb: NotebookNode, files_dir: str, how_to_run: str) -> dict[str, bytes]:
    """Replace every widget output of ``nb`` (in place) by static HTML; drop the saved widget state.

    ``files_dir`` is the folder, relative to the page, that the frames are written to; ``how_to_run`` is
    the HTML of the line that tells a reader how to get the live widget. Returns {path: PNG bytes}."""
    state = nb.metadata.get("widgets", {}).get(STATE_MIME, {}).get("state", {})
    images: dict[str, bytes] = {}
    for k, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            view = output.get("data", {}).get(VIEW_MIME)
            if not view:
                continue
            frozen = _Frozen(files_dir, prefix=f"widget_{k}_{j}")
            body = _render(view["model_id"], state, frozen)
            output["data"] = {"text/html": _figure(body, how_to_run)}
            images.update(frozen.images)
    nb.metadata.pop("widgets", None)
    return images


def _figure(body: str, how_to_run: str) -> str:
    if not body:
        return f'<p class="frozen-widget-missing">An interactive widget, not saved in the notebook. {how_to_run}</p>'
    return (f'<figure class="frozen-widget">{body}<figcaption>A slider in the notebook: here, the frame it saved, '
            f'with its controls as they were. {how_to_run}</figcaption></figure>')


def _render(model_id: str, state: dict, frozen: _Frozen) -> str:
    """The HTML of one widget model and its children ("" for a model not saved or not shown)."""
    model = state.get(model_id.removeprefix("IPY_MODEL_"))
    if model is None or _hidden(model, state):
        return ""
    name, values = model["model_name"], model["state"]
    if name in _BOXES:
        inner = "".join(_render(child, state, frozen) for child in values.get("children", []))
        return f'<div class="frozen-{_BOXES[name]}">{inner}</div>' if inner else ""
    if name == "ImageModel":
        return _image(model, frozen)
    if name in _MENUS or name == "SelectionSliderModel":
        return _menu(values)
    if name in _SLIDERS:
        return _slider(values)
    if name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        text = BeautifulSoup(str(values.get("value", "")), "html.parser").get_text()
        return f'<span class="frozen-label">{html.escape(text)}</span>' if text else ""
    if name == "OutputModel":
        return _output_text(values)
    return ""  # Play buttons, styles, layouts: nothing to show on a static page


def _hidden(model: dict, state: dict) -> bool:
    layout = state.get(str(model["state"].get("layout", "")).removeprefix("IPY_MODEL_"), {})
    return layout.get("state", {}).get("display") == "none" or layout.get("state", {}).get("visibility") == "hidden"


def _image(model: dict, frozen: _Frozen) -> str:
    buffer = next((b for b in model.get("buffers", []) if b.get("path") == ["value"]), None)
    if buffer is None:
        return ""
    src = frozen.add_image(base64.b64decode(buffer["data"]))
    return f'<img class="frozen-frame" src="{html.escape(src)}" alt="the frame the widget showed when saved">'


def _menu(values: dict) -> str:
    labels, index = values.get("_options_labels", []), values.get("index")
    options = "".join(f"<option{' selected' if i == index else ''}>{html.escape(label)}</option>"
                      for i, label in enumerate(labels))
    description = values.get("description", "")
    return (f'<label class="frozen-control">{html.escape(description)} '
            f'<select disabled>{options}</select></label>')


def _slider(values: dict) -> str:
    low, high, value = values.get("min", 0), values.get("max", 100), values.get("value", 0)
    description = values.get("description", "")
    readout = f" <output>{value}</output>" if values.get("readout", True) else ""
    return (f'<label class="frozen-control">{html.escape(description)} '
            f'<input type="range" disabled min="{low}" max="{high}" step="{values.get("step", 1)}" '
            f'value="{value}">{readout}</label>')


def _output_text(values: dict) -> str:
    texts = [o.get("text", "") for o in values.get("outputs", []) if o.get("output_type") == "stream"]
    text = "".join("".join(t) if isinstance(t, list) else t for t in texts)
    return f'<pre class="frozen-output">{html.escape(text)}</pre>' if text.strip() else ""
