"""Datasets as uint8 tensors in their real on-disk formats; images are served as float32 in [0, 1] (spec §3).

    from ferd.toolkit.data import load_split, stratified_subset
    test = load_split("fashion_mnist", "test")         # ImageSplit, 10,000 images
    aa_subset = stratified_subset(test, per_class=100)  # spec §8: AA on the first 100 per class

Lookup order for a dataset folder: the `root` argument, `$FERD_DATA`, `./data`, then (Fashion-MNIST only) the
Debian package folder `/usr/share/datasets/fashion-mnist`; only when none holds the files does torchvision
download them (Fashion-MNIST, CIFAR) into the first of root / $FERD_DATA / ./data. Parsed tensors are cached
in memory, so repeated loads are free: treat `ImageSplit.images` as read-only.
"""
from __future__ import annotations

import gzip
import os
import pickle
import shutil
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from ferd.errors import ConfigError, DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (spec §3)."""

    name: str
    num_classes: int
    shape: tuple[int, int, int]  # (C, H, W)
    eval_split: str  # what load_split(name, "test") returns
    summary_metric: str  # "worst" or "worst10" (spec §3)


DATASETS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, (1, 28, 28), "official test split (10,000)", "worst"),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), "official test split (10,000)", "worst"),
    "cifar100": DatasetInfo("cifar100", 100, (3, 32, 32), "official test split (10,000)", "worst10"),
    "tiny_imagenet": DatasetInfo("tiny_imagenet", 200, (3, 64, 64), "official validation split (10,000)",
                                 "worst10"),
}
SPLITS = ("train", "test")

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # spec §8 table

# Searched after root / $FERD_DATA / ./data; a module constant so tests can point it elsewhere.
SYSTEM_DIRS: dict[str, list[Path]] = {"fashion_mnist": [Path("/usr/share/datasets/fashion-mnist")]}

_HINTS = {
    "fashion_mnist": "Get it with `apt-get install dataset-fashion-mnist` (files land in "
                     "/usr/share/datasets/fashion-mnist), or set FERD_DATA to a folder holding the four idx files "
                     "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                     "t10k-labels-idx1-ubyte; gzipped or not), or allow network access for the torchvision download.",
    "cifar10": "Extract the python version (cifar-10-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html) "
               "so that <root>/cifar-10-batches-py/ exists and set FERD_DATA=<root>, or allow network access "
               "for the torchvision download.",
    "cifar100": "Extract the python version (cifar-100-python.tar.gz, https://www.cs.toronto.edu/~kriz/cifar.html) "
                "so that <root>/cifar-100-python/ exists and set FERD_DATA=<root>, or allow network access "
                "for the torchvision download.",
    "tiny_imagenet": "Download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it so that "
                     "<root>/tiny-imagenet-200/wnids.txt exists, then set FERD_DATA=<root> or pass root.",
}


@dataclass(eq=False)
class ImageSplit:
    """One split of a dataset: uint8 images [N, C, H, W], int64 labels [N], class names in index order."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    dataset: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ConfigError("images", f"{self.images.dtype} {tuple(self.images.shape)}", "torch.uint8 [N,C,H,W]")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ConfigError("labels", f"{self.labels.dtype} {tuple(self.labels.shape)}",
                              f"torch.int64 [{self.images.shape[0]}]")
        if len(self.labels) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ConfigError("labels", (int(self.labels.min()), int(self.labels.max())),
                              f"class indices in [0, {len(self.classes)})")

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def float_images(self, idx: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images (all, or `idx`) as float32 in [0, 1]."""
        x = self.images if idx is None else self.images[idx]
        return x.to(torch.float32).div_(255.0)

    def class_counts(self) -> torch.Tensor:
        """Number of images per class, int64 [num_classes]."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def subset(self, idx: torch.Tensor) -> ImageSplit:
        """A new split holding the images at `idx`, in that order."""
        return ImageSplit(self.images[idx], self.labels[idx], list(self.classes), self.dataset)

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float32 [b,C,H,W] in [0,1], y int64 [b]); the last batch may be smaller."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", batch_size, "an int >= 1")
        order = torch.randperm(len(self), generator=generator) if shuffle else None
        for start in range(0, len(self), batch_size):
            idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            yield self.float_images(idx), self.labels[idx]


def stratified_indices(labels: torch.Tensor, num_classes: int, per_class: int) -> torch.Tensor:
    """Indices of the first `per_class` samples of every class, returned in dataset order."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ConfigError("per_class", per_class, "an int >= 1")
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) < per_class:
        c = int(counts.argmin())
        raise ConfigError("per_class", per_class, f"at most {int(counts.min())} (class {c} has only that many)")
    order = torch.argsort(labels, stable=True)  # grouped by class, dataset order inside each class
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(labels)
    rank[order] = torch.arange(len(labels)) - starts[labels[order]]  # position of each sample within its class
    return torch.nonzero(rank < per_class).squeeze(1)


def stratified_subset(split: ImageSplit, per_class: int) -> ImageSplit:
    """The first `per_class` images of each class in dataset order (spec §8: the fixed AA subset)."""
    return split.subset(stratified_indices(split.labels, split.num_classes, per_class))


def load_split(dataset: str, split: str, root: str | os.PathLike | None = None, download: bool = True) -> ImageSplit:
    """Load `split` ("train" or "test"; Tiny-ImageNet's "test" is its labelled val split) of `dataset`.

    Raises DataError, saying how to get the data, when no location holds it and the download fails or is off.
    """
    if dataset not in DATASETS:
        raise ConfigError("dataset", dataset, list(DATASETS))
    if split not in SPLITS:
        raise ConfigError("split", split, SPLITS)
    bases = _search_bases(root) + SYSTEM_DIRS.get(dataset, [])
    found = _find(dataset, bases)
    if found is None and download and dataset != "tiny_imagenet":
        _download(dataset, _search_bases(root)[0], bases)
        found = _find(dataset, bases)
    if found is None:
        searched = ", ".join(str(b.absolute()) for b in bases)
        raise DataError(f"{dataset} not found (searched {searched}). {_HINTS[dataset]}")
    loader = {"fashion_mnist": _load_fashion_mnist, "cifar10": _load_cifar,
              "cifar100": _load_cifar, "tiny_imagenet": _load_tiny_imagenet}[dataset]
    images, labels, classes = loader(dataset, str(found.resolve()), split)
    return ImageSplit(images, labels, list(classes), dataset)


# --- locating --------------------------------------------------------------------------------------------

def _search_bases(root: str | os.PathLike | None) -> list[Path]:
    bases = [Path(root)] if root is not None else []
    if os.environ.get("FERD_DATA"):
        bases.append(Path(os.environ["FERD_DATA"]))
    return bases + [Path("data")]


_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "tiny_imagenet": "tiny-imagenet-200"}


def _fashion_files(folder: Path) -> dict[str, Path | None]:
    """The four idx files of Fashion-MNIST in `folder` (gzipped preferred), None where absent."""
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    found = {}
    for name in names:
        paths = [folder / (name + ".gz"), folder / name]
        found[name] = next((p for p in paths if p.is_file()), None)
    return found


def _find(dataset: str, bases: list[Path]) -> Path | None:
    """First candidate folder holding (any part of) `dataset`; a partial one raises DataError."""
    for base in bases:
        if dataset == "fashion_mnist":
            for folder in (base, base / "fashion-mnist", base / "fashion_mnist", base / "FashionMNIST" / "raw"):
                files = _fashion_files(folder)
                if any(files.values()):
                    missing = [name for name, p in files.items() if p is None]
                    if missing:
                        raise DataError(f"Fashion-MNIST folder {folder} is incomplete: missing "
                                        f"{', '.join(missing)} (.gz or raw). {_HINTS[dataset]}")
                    return folder
        else:
            folder_name = _FOLDERS[dataset]
            for folder in (base / folder_name, base):
                if folder.name == folder_name and folder.is_dir():
                    return folder
    return None


def _download(dataset: str, base: Path, searched: list[Path]) -> None:
    """torchvision download into `base` (it writes FashionMNIST/raw or cifar-*-python* there)."""
    try:
        import torchvision.datasets as tvd

        cls = {"fashion_mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10, "cifar100": tvd.CIFAR100}[dataset]
        for train in (True, False):
            cls(str(base), train=train, download=True)
    except Exception as err:  # any network/IO failure becomes one actionable message
        searched_text = ", ".join(str(b.absolute()) for b in searched)
        raise DataError(f"{dataset} not found (searched {searched_text}) and the torchvision download into "
                        f"{base} failed ({type(err).__name__}: {err}). {_HINTS[dataset]}") from err


# --- Fashion-MNIST: idx files -----------------------------------------------------------------------------

def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one uint8 idx file (gzipped or raw): magic 0x0000 08 <ndim>, big-endian int32 dims, data."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is corrupt or truncated ({err}). {_HINTS['fashion_mnist']}") from err
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes([0, 0, 0x08, ndim]):
        raise DataError(f"{path} is not a uint8 idx file with {ndim} dimensions. {_HINTS['fashion_mnist']}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims} but holds {len(raw) - header} bytes of data. "
                        f"{_HINTS['fashion_mnist']}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@lru_cache(maxsize=8)
def _load_fashion_mnist(dataset: str, folder: str, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    files = _fashion_files(Path(folder))
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(files[f"{prefix}-images-idx3-ubyte"], 3)  # [N, 28, 28]
    labels = read_idx(files[f"{prefix}-labels-idx1-ubyte"], 1)  # [N]
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or (len(labels) and labels.max() > 9):
        raise DataError(f"Fashion-MNIST {split} files in {folder} disagree: images {images.shape}, "
                        f"{len(labels)} labels (max {labels.max() if len(labels) else None}). "
                        f"{_HINTS['fashion_mnist']}")
    return (torch.from_numpy(images.copy()).unsqueeze(1),  # [N, 1, 28, 28]
            torch.from_numpy(labels.astype(np.int64)), FASHION_MNIST_CLASSES)


# --- CIFAR-10 / CIFAR-100: python pickle batches ----------------------------------------------------------

_CIFAR = {  # files per split, meta file, label key, class-name key
    "cifar10": ({"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
                "batches.meta", "labels", "label_names"),
    "cifar100": ({"train": ["train"], "test": ["test"]}, "meta", "fine_labels", "fine_label_names"),
}


def _unpickle(path: Path, dataset: str) -> dict:
    if not path.is_file():
        raise DataError(f"{dataset} folder {path.parent} is incomplete: missing {path.name}. {_HINTS[dataset]}")
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")  # the batches are Python-2 pickles with bytes keys
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        raise DataError(f"{path} is corrupt or truncated ({err}). {_HINTS[dataset]}") from err
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


@lru_cache(maxsize=4)
def _load_cifar(dataset: str, folder: str, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    files, meta_name, label_key, names_key = _CIFAR[dataset]
    for name in files["train"] + files["test"] + [meta_name]:  # fail early on a partial folder
        if not (Path(folder) / name).is_file():
            raise DataError(f"{dataset} folder {folder} is incomplete: missing {name}. {_HINTS[dataset]}")
    meta = _unpickle(Path(folder) / meta_name, dataset)
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    images, labels = [], []
    for name in files[split]:
        batch = _unpickle(Path(folder) / name, dataset)
        data = np.asarray(batch.get("data"))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or label_key not in batch:
            raise DataError(f"{Path(folder) / name} does not hold uint8 'data' [N, 3072] and '{label_key}'. "
                            f"{_HINTS[dataset]}")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are R, G, B planes of 32x32
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return (torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)), classes)


# --- Tiny-ImageNet: JPEG folders --------------------------------------------------------------------------

def _read_jpeg(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))  # some Tiny-ImageNet images are greyscale
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path} cannot be decoded ({err}). {_HINTS['tiny_imagenet']}") from err
    if arr.shape != (64, 64, 3):
        raise DataError(f"{path} is {arr.shape[1]}x{arr.shape[0]}, expected 64x64. {_HINTS['tiny_imagenet']}")
    return arr.transpose(2, 0, 1)  # [3, 64, 64]


def _tiny_val_annotations(folder: Path) -> list[tuple[str, str]]:
    path = folder / "val" / "val_annotations.txt"
    if not path.is_file():
        raise DataError(f"Tiny-ImageNet folder {folder} is incomplete: missing val/val_annotations.txt. "
                        f"{_HINTS['tiny_imagenet']}")
    rows = [line.split("\t")[:2] for line in path.read_text().splitlines() if line.strip()]
    return [(name, wnid) for name, wnid in rows]


@lru_cache(maxsize=2)
def _load_tiny_imagenet(dataset: str, folder: str, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    root = Path(folder)
    for name in ("wnids.txt", "words.txt"):
        if not (root / name).is_file():
            raise DataError(f"Tiny-ImageNet folder {root} is incomplete: missing {name}. {_HINTS[dataset]}")
    wnids = sorted(w.strip() for w in (root / "wnids.txt").read_text().splitlines() if w.strip())
    words = dict(line.split("\t", 1) for line in (root / "words.txt").read_text().splitlines() if "\t" in line)
    classes = [words.get(w, w).split(",")[0].strip() for w in wnids]
    duplicates = {c for c in classes if classes.count(c) > 1}
    classes = [f"{c} ({w})" if c in duplicates else c for c, w in zip(classes, wnids)]
    index = {w: i for i, w in enumerate(wnids)}
    items: list[tuple[Path, int]] = []
    if split == "train":
        for wnid in wnids:
            images = root / "train" / wnid / "images"
            if not images.is_dir():
                raise DataError(f"Tiny-ImageNet folder {root} is incomplete: missing train/{wnid}/images. "
                                f"{_HINTS[dataset]}")
            items += [(p, index[wnid]) for p in sorted(images.glob("*.JPEG"))]
    else:  # the labelled val split, sorted into classes by the annotation file (spec §3)
        for name, wnid in _tiny_val_annotations(root):
            if wnid not in index:
                raise DataError(f"val_annotations.txt names {wnid}, which is not in wnids.txt. {_HINTS[dataset]}")
            # before or after sort_tiny_imagenet_val
            candidates = [root / "val" / "images" / name, root / "val" / wnid / "images" / name]
            path = next((p for p in candidates if p.is_file()), None)
            if path is None:
                raise DataError(f"Tiny-ImageNet val image {name} ({wnid}) is missing. {_HINTS[dataset]}")
            items.append((path, index[wnid]))
    arrays = [_read_jpeg(p) for p, _ in tqdm(items, desc=f"tiny_imagenet {split}", leave=False,
                                               disable=len(items) < 5000)]
    images = np.stack(arrays) if arrays else np.zeros((0, 3, 64, 64), np.uint8)
    return torch.from_numpy(images), torch.tensor([c for _, c in items], dtype=torch.int64), classes


def sort_tiny_imagenet_val(folder: str | os.PathLike) -> int:
    """Move `val/images/*.JPEG` into `val/<wnid>/images/` per the annotation file; returns files moved.

    `load_split` reads either layout; this is for tools that expect one folder per class (spec §3).
    """
    root = Path(folder)
    moved = 0
    for name, wnid in _tiny_val_annotations(root):
        src = root / "val" / "images" / name
        if src.is_file():
            dst = root / "val" / wnid / "images" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
            moved += 1
    return moved
