"""MNIST: the four canonical IDX files, checked by MD5, scaled to [-1, 1].

Where the files come from, in order:

1. ``root=`` passed to `load_mnist`;
2. the folder named by the environment variable ``DIFFCOURSE_DATA_DIR``
   (an existing copy; nothing is downloaded into it);
3. a cache, ``~/.cache/diffcourse/mnist`` (or ``$XDG_CACHE_HOME/diffcourse/mnist``),
   into which missing files are downloaded from the public mirrors and checked.

A file whose MD5 does not match is never used: the error names the file, the
expected and the found checksum, and where to put a good copy.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = ["FILES", "MIRRORS", "load_mnist", "data_dir", "MNISTError", "read_idx"]

# name -> md5, as torchvision lists them
FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")


class MNISTError(RuntimeError):
    """MNIST files are missing or corrupt and could not be fetched."""


def data_dir(root: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The folder to read MNIST from, and whether downloading into it is allowed."""
    if root is not None:
        return Path(root).expanduser(), True
    env = os.environ.get("DIFFCOURSE_DATA_DIR")
    if env:
        return Path(env).expanduser(), False
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "diffcourse" / "mnist", True


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _help(folder: Path) -> str:
    return (f"Put the four MNIST files ({', '.join(FILES)}) in {folder}, or point the environment "
            "variable DIFFCOURSE_DATA_DIR at a folder that has them.")


def _download(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for mirror in MIRRORS:
        tmp = folder / (name + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=30) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as e:  # URLError is an OSError
            errors.append(f"{mirror}: {e}")
            continue
        if _md5(tmp) == FILES[name]:
            tmp.replace(folder / name)
            return
        errors.append(f"{mirror}: downloaded file has the wrong MD5")
        tmp.unlink(missing_ok=True)
    raise MNISTError(f"Could not download {name}: " + "; ".join(errors) + ". " + _help(folder))


def _checked_file(name: str, folder: Path, download: bool) -> Path:
    path = folder / name
    if path.exists():
        found = _md5(path)
        if found == FILES[name]:
            return path
        if not download:
            raise MNISTError(
                f"{path} is corrupt: its MD5 is {found}, expected {FILES[name]}. "
                f"Replace it with a good copy (delete it to have it downloaded again). " + _help(folder))
        path.unlink()
    elif not download:
        raise MNISTError(f"{path} is missing (expected MD5 {FILES[name]}) and downloading is switched off. " + _help(folder))
    _download(name, folder)
    return path


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST container format) into a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:
        raise MNISTError(f"{path} is not an unsigned-byte IDX file (magic number {magic:#x}).")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@lru_cache(maxsize=4)
def _load(split: str, folder: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    img_name, lab_name = SPLITS[split]
    images = read_idx(_checked_file(img_name, Path(folder), download))
    labels = read_idx(_checked_file(lab_name, Path(folder), download))
    x = torch.from_numpy(images.astype(np.float32)).div_(127.5).sub_(1.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def load_mnist(split: str = "train", root: str | os.PathLike | None = None,
               download: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""MNIST images as float32 ``(N, 1, 28, 28)`` in :math:`[-1, 1]` (pixel/127.5 − 1) and int64 labels.

    ``split`` is ``"train"`` (60 000 images) or ``"test"`` (10 000). Files are
    MD5-checked; see the module docstring for where they are looked for.
    ``download=False`` forbids fetching (the default allows it except from
    ``DIFFCOURSE_DATA_DIR``, which is taken as a read-only copy).
    The returned tensors are shared between calls: clone before editing in place.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder, may_download = data_dir(root)
    if download is not None:
        may_download = may_download and download
    return _load(split, str(folder), bool(may_download))
