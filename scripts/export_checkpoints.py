"""Ship trained MNIST networks: copy the EMA exports from ``runs/`` into ``diffcourse/checkpoints/``
and write ``manifest.json``.

    python -m diffcourse train mnist-ddpm            # … and the other three recipes (see README)
    python benchmarks/mnist_quality.py --ddpm runs/mnist-ddpm/mnist-ddpm.pt … --out quality.json
    python scripts/export_checkpoints.py [--runs runs] [--quality quality.json]
    python scripts/export_checkpoints.py --names latent-vae latent-ldm   # only these entries (chapter 8's, say)

Entries that are not exported are kept as they are in the manifest: exporting the four MNIST networks
leaves chapter 8's entries (and their files) alone, and ``--names`` updates only the named ones.

The files are copied byte for byte (the shipped weights are exactly what the recipe wrote); the
manifest records for each one its SHA-256, size, recipe settings, parameter count, training steps,
wall time, device, the command that produced it, and the quality measured on those weights.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from diffcourse.pretrained import CHECKPOINT_DIR, load_export, sha256
from diffcourse.recipes.base import build_model
from diffcourse.recipes.latent import LATENT_RECIPES
from diffcourse.recipes.mnist import RECIPES
from diffcourse.recipes.registry import RECIPES as ALL_RECIPES

# which part of benchmarks/mnist_quality.py's report belongs to which checkpoint
QUALITY_KEYS = {"mnist-classifier": ["classifier"], "mnist-noisy-classifier": ["noisy_classifier"],
                "mnist-ddpm": ["floor", "ddim50", "ddpm1000"], "mnist-cfg": ["cfg"]}


def entry(name: str, file: Path, quality: dict, note: str) -> dict:
    state = load_export(file)
    model = build_model(state["model"], state["config"])
    return {
        "file": file.name, "sha256": sha256(file), "bytes": file.stat().st_size,
        "recipe": name, "description": ALL_RECIPES[name].description, "model": state["model"], "config": state["config"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_steps": state["steps"], "settings": state["settings"],
        **({"schedule": {"name": state["settings"]["schedule"], "T": state["settings"]["T"]}}
           if state["settings"].get("kind") not in ("vae", "sigma-vae", "gan") else {}),  # none in a VAE or GAN
        "wall_time_s": state["seconds"], **({"cpu_time_s": state["cpu_seconds"]} if "cpu_seconds" in state else {}),
        "device": f"{state['device']} ({note})",
        "images_per_second": round(state["steps"] * state["settings"]["batch_size"] / state["seconds"], 1),
        "command": f"python -m diffcourse train {name}  (resumed after interruptions; resume is exact)",
        "weights": "EMA",
        "quality": {k: quality[k] for k in QUALITY_KEYS.get(name, []) if k in quality},
    }


def quality_note(quality: dict) -> str:
    return ("EMA weights exported by `python -m diffcourse train`; quality measured on these files by "
            "benchmarks/mnist_quality.py" + (f" (N = {quality['n']}, {quality['device']})" if quality else ""))


def record_quality(quality: dict) -> None:
    """Write the measured ``quality`` into the existing manifest, checking first that the weights are the shipped ones."""
    path = CHECKPOINT_DIR / "manifest.json"
    manifest = json.loads(path.read_text())
    for name, e in manifest["checkpoints"].items():
        if name not in QUALITY_KEYS:  # not measured by benchmarks/mnist_quality.py: leave its entry alone
            continue
        if sha256(CHECKPOINT_DIR / e["file"]) != e["sha256"]:
            raise SystemExit(f"{e['file']} does not match its manifest hash; re-export instead of --quality-only.")
        e["quality"] = {k: quality[k] for k in QUALITY_KEYS[name] if k in quality}
    manifest["note"] = quality_note(quality)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"quality recorded in {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs", help="folder with one sub-folder per recipe (train's default --out)")
    p.add_argument("--quality", default=None, help="JSON written by benchmarks/mnist_quality.py --out")
    p.add_argument("--quality-only", action="store_true",
                   help="leave the weights alone: only record --quality in the existing manifest")
    p.add_argument("--names", nargs="+", default=None, metavar="NAME",
                   help=f"export only these recipes (default: the MNIST ones, {' '.join(RECIPES)}); "
                        f"every other manifest entry is kept. Chapter 8: {' '.join(LATENT_RECIPES)}")
    p.add_argument("--device-note", default="2-core CPU, 1 thread per run, recipes trained concurrently",
                   help="how the machine was shared, recorded next to the device")
    a = p.parse_args()
    quality = json.loads(Path(a.quality).read_text()) if a.quality else {}
    if a.quality_only:
        return record_quality(quality)
    CHECKPOINT_DIR.mkdir(exist_ok=True)
    names = a.names or list(RECIPES)
    unknown = [n for n in names if n not in ALL_RECIPES]
    if unknown:
        raise SystemExit(f"Unknown recipe(s) {unknown}; choose from {', '.join(ALL_RECIPES)}.")
    path = CHECKPOINT_DIR / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {"checkpoints": {}}
    entries = {}
    for name in names:
        src = Path(a.runs) / name / f"{name}.pt"
        if not src.exists():
            raise SystemExit(f"{src} is missing: train it with `python -m diffcourse train {name}` first.")
        dst = CHECKPOINT_DIR / src.name
        shutil.copyfile(src, dst)
        entries[name] = entry(name, dst, quality, a.device_note)
    mnist_exported = any(n in RECIPES for n in names)
    manifest = {"format": 1,
                "note": quality_note(quality) if mnist_exported else old.get("note", quality_note(quality)),
                "checkpoints": {**old["checkpoints"], **entries}}
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(e["bytes"] for e in manifest["checkpoints"].values())
    for name, e in manifest["checkpoints"].items():
        print(f"{name:24s} {e['bytes'] / 1e6:5.2f} MB  {e['parameters']:>8,d} params  {e['training_steps']} steps  "
              f"{e['wall_time_s'] / 60:5.1f} min")
    print(f"exported {', '.join(entries)}; total of all {len(manifest['checkpoints'])} shipped: {total / 1e6:.2f} MB "
          f"in {CHECKPOINT_DIR}")


if __name__ == "__main__":
    main()
