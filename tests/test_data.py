"""ferd.toolkit.data on tiny fake datasets written in the real on-disk formats (idx.gz, CIFAR pickles, Tiny-ImageNet
JPEG folders), plus the real Fashion-MNIST test split when the Debian package is installed."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ferd.errors import ConfigError, DataError
from ferd.toolkit import data
from ferd.toolkit.data import DATASETS, ImageSplit, load_split, sort_tiny_imagenet_val, stratified_subset

FMNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte"]


@pytest.fixture(autouse=True)
def isolated_lookup(monkeypatch, tmp_path):
    """No $FERD_DATA, no ./data, no system folder: each test sees only the folders it writes."""
    monkeypatch.delenv("FERD_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "SYSTEM_DIRS", {})


# --- writers for the real formats ---------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = True,
                        seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.permutation(np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        payload = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return arrays


def write_cifar(root: Path, dataset: str, per_class_train: int = 1, per_class_test: int = 2) -> dict:
    """cifar-10-batches-py (5 train batches) or cifar-100-python, as Python-2-style pickles with bytes keys."""
    c = 10 if dataset == "cifar10" else 100
    folder = root / ("cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    label_key = b"labels" if dataset == "cifar10" else b"fine_labels"

    def batch(n_per_class: int) -> dict:
        labels = rng.permutation(np.arange(c * n_per_class) % c).tolist()
        d = {b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), label_key: labels}
        if dataset == "cifar100":
            d[b"coarse_labels"] = [lab // 5 for lab in labels]
        return d

    names = [f"name_{i}".encode() for i in range(c)]
    if dataset == "cifar10":
        files = {f"data_batch_{i}": batch(per_class_train) for i in range(1, 6)}
        files["test_batch"] = batch(per_class_test)
        files["batches.meta"] = {b"label_names": names, b"num_vis": 3072}
    else:
        files = {"train": batch(per_class_train), "test": batch(per_class_test),
                 "meta": {b"fine_label_names": names, b"coarse_label_names": [b"x"] * 20}}
    for name, obj in files.items():
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    return files


TINY_WNIDS = ["n03000000", "n01000000", "n02000000"]  # deliberately unsorted in wnids.txt


def tiny_colour(class_index: int) -> int:
    return 30 + 90 * class_index  # solid grey level per sorted class index: 30, 120, 210


def write_tiny_imagenet(root: Path, per_class: int = 2) -> list[tuple[str, str]]:
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(TINY_WNIDS) + "\n")
    words = {"n01000000": "goldfish, Carassius auratus", "n02000000": "tabby, tabby cat",
             "n03000000": "lighthouse", "n09999999": "unused entry"}
    (folder / "words.txt").write_text("".join(f"{w}\t{t}\n" for w, t in words.items()))
    order = sorted(TINY_WNIDS)
    for wnid in TINY_WNIDS:
        (folder / "train" / wnid / "images").mkdir(parents=True)
        level = tiny_colour(order.index(wnid))
        for k in range(per_class):
            # one greyscale JPEG per class: the loader must convert it to RGB
            mode = "L" if k == 0 else "RGB"
            Image.new(mode, (64, 64), level if mode == "L" else (level,) * 3).save(
                folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG")
    annotations = [(f"val_{i}.JPEG", TINY_WNIDS[(2 * i + 1) % 3]) for i in range(3 * per_class)]
    for name, wnid in annotations:
        Image.new("RGB", (64, 64), (tiny_colour(order.index(wnid)),) * 3).save(folder / "val" / "images" / name)
    (folder / "val" / "val_annotations.txt").write_text(
        "".join(f"{name}\t{wnid}\t0\t0\t63\t63\n" for name, wnid in annotations))
    return annotations


# --- metadata ----------------------------------------------------------------------------------------

def test_datasets_metadata_matches_spec_table() -> None:
    assert {n: (d.num_classes, d.shape) for n, d in DATASETS.items()} == {
        "fashion_mnist": (10, (1, 28, 28)), "cifar10": (10, (3, 32, 32)),
        "cifar100": (100, (3, 32, 32)), "tiny_imagenet": (200, (3, 64, 64))}


def test_bad_dataset_or_split_raises_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="fashion_mnist"):
        load_split("mnist", "test", root=tmp_path)
    with pytest.raises(ConfigError, match="split"):
        load_split("cifar10", "val", root=tmp_path)


# --- Fashion-MNIST -----------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_idx_roundtrip(tmp_path, gz: bool) -> None:
    arrays = write_fashion_mnist(tmp_path / "fm", gz=gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        s = load_split("fashion_mnist", split, root=tmp_path / "fm", download=False)
        assert s.images.dtype == torch.uint8 and s.images.shape == (len(s), 1, 28, 28)
        assert torch.equal(s.images[:, 0], torch.from_numpy(arrays[f"{prefix}-images-idx3-ubyte"]))
        assert torch.equal(s.labels, torch.from_numpy(arrays[f"{prefix}-labels-idx1-ubyte"]).long())
        assert s.classes[6] == "Shirt" and s.dataset == "fashion_mnist"
    assert len(load_split("fashion_mnist", "train", root=tmp_path / "fm", download=False)) == 30


def test_fashion_mnist_lookup_order_and_cache(tmp_path, monkeypatch) -> None:
    a = write_fashion_mnist(tmp_path / "a", seed=1)
    b = write_fashion_mnist(tmp_path / "b" / "FashionMNIST" / "raw", seed=2, gz=False)  # torchvision layout
    c = write_fashion_mnist(tmp_path / "data" / "fashion-mnist", seed=3)  # ./data (cwd is tmp_path)
    first = lambda arrays: torch.from_numpy(arrays["t10k-images-idx3-ubyte"][0])  # noqa: E731
    assert torch.equal(load_split("fashion_mnist", "test", download=False).images[0, 0], first(c))
    monkeypatch.setenv("FERD_DATA", str(tmp_path / "b"))
    assert torch.equal(load_split("fashion_mnist", "test", download=False).images[0, 0], first(b))
    s1 = load_split("fashion_mnist", "test", root=tmp_path / "a", download=False)
    s2 = load_split("fashion_mnist", "test", root=tmp_path / "a", download=False)
    assert torch.equal(s1.images[0, 0], first(a))
    assert s1.images is s2.images  # parsed once, served from the in-memory cache


def test_fashion_mnist_system_folder_is_last(tmp_path, monkeypatch) -> None:
    system = write_fashion_mnist(tmp_path / "usr-share", seed=4)
    monkeypatch.setattr(data, "SYSTEM_DIRS", {"fashion_mnist": [tmp_path / "usr-share"]})
    s = load_split("fashion_mnist", "train", download=False)
    assert torch.equal(s.images[0, 0], torch.from_numpy(system["train-images-idx3-ubyte"][0]))


def test_fashion_mnist_partial_folder_names_missing_file(tmp_path) -> None:
    write_fashion_mnist(tmp_path / "fm")
    (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_split("fashion_mnist", "test", root=tmp_path / "fm", download=False)


def test_fashion_mnist_truncated_files_are_named(tmp_path) -> None:
    write_fashion_mnist(tmp_path / "gz")
    path = tmp_path / "gz" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])  # truncated gzip stream
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_split("fashion_mnist", "test", root=tmp_path / "gz", download=False)
    write_fashion_mnist(tmp_path / "raw", gz=False)
    path = tmp_path / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-28])  # valid header, short data
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_split("fashion_mnist", "test", root=tmp_path / "raw", download=False)


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load_split("fashion_mnist", "test", root=tmp_path / "nowhere", download=False)
    assert "FERD_DATA" in str(info.value) and "nowhere" in str(info.value)


def test_failed_download_becomes_data_error(tmp_path, monkeypatch) -> None:
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DataError, match="no network") as info:
        load_split("fashion_mnist", "test", root=tmp_path / "dl", download=True)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL_FMNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split() -> None:
    s = load_split("fashion_mnist", "test", root=REAL_FMNIST, download=False)
    assert len(s) == 10_000 and s.images.shape == (10_000, 1, 28, 28)
    assert s.class_counts().tolist() == [1000] * 10
    assert int(s.images.min()) == 0 and int(s.images.max()) == 255
    x = s.float_images(slice(0, 256))
    assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert stratified_subset(s, 100).class_counts().tolist() == [100] * 10


# --- CIFAR -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_pickle_batches(tmp_path, dataset: str) -> None:
    files = write_cifar(tmp_path, dataset)
    c = DATASETS[dataset].num_classes
    train = load_split(dataset, "train", root=tmp_path, download=False)
    test = load_split(dataset, "test", root=tmp_path, download=False)
    assert len(train) == (5 * c if dataset == "cifar10" else c) and len(test) == 2 * c
    assert train.images.shape[1:] == (3, 32, 32) and test.classes[3] == "name_3"
    raw = files["test_batch" if dataset == "cifar10" else "test"]
    assert torch.equal(test.images[0], torch.from_numpy(raw[b"data"][0].reshape(3, 32, 32)))
    assert test.labels.tolist() == list(raw[b"labels" if dataset == "cifar10" else b"fine_labels"])
    if dataset == "cifar10":  # batches concatenated in order 1..5
        assert torch.equal(train.images[c], torch.from_numpy(files["data_batch_2"][b"data"][0].reshape(3, 32, 32)))


def test_cifar_partial_and_corrupt_folders(tmp_path) -> None:
    write_cifar(tmp_path / "partial", "cifar10")
    (tmp_path / "partial" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_split("cifar10", "test", root=tmp_path / "partial", download=False)
    write_cifar(tmp_path / "corrupt", "cifar100")
    path = tmp_path / "corrupt" / "cifar-100-python" / "test"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="cifar-100-python.test is corrupt"):
        load_split("cifar100", "test", root=tmp_path / "corrupt", download=False)
    with pytest.raises(DataError, match="torchvision"):
        load_split("cifar10", "test", root=tmp_path / "none", download=False)


# --- Tiny-ImageNet -----------------------------------------------------------------------------------

def test_tiny_imagenet_train_and_annotated_val(tmp_path) -> None:
    annotations = write_tiny_imagenet(tmp_path)
    train = load_split("tiny_imagenet", "train", root=tmp_path)
    val = load_split("tiny_imagenet", "test", root=tmp_path)
    assert train.classes == ["goldfish", "tabby", "lighthouse"]  # sorted wnid order, first name in words.txt
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2] and train.images.shape == (6, 3, 64, 64)
    expected = [sorted(TINY_WNIDS).index(w) for _, w in annotations]
    assert val.labels.tolist() == expected
    for split in (train, val):  # solid colours survive JPEG; class k has level tiny_colour(k)
        means = split.images.float().mean(dim=(1, 2, 3))
        levels = torch.tensor([tiny_colour(int(k)) for k in split.labels], dtype=torch.float32)
        assert (means - levels).abs().max() < 4


def test_tiny_imagenet_sorted_val_layout(tmp_path) -> None:
    write_tiny_imagenet(tmp_path)
    before = load_split("tiny_imagenet", "test", root=tmp_path)
    folder = tmp_path / "tiny-imagenet-200"
    assert sort_tiny_imagenet_val(folder) == 6
    assert not list((folder / "val" / "images").iterdir())
    assert len(list((folder / "val" / "n02000000" / "images").glob("*.JPEG"))) == 2
    data._load_tiny_imagenet.cache_clear()
    after = load_split("tiny_imagenet", "test", root=tmp_path)
    assert torch.equal(before.labels, after.labels) and torch.equal(before.images, after.images)


def test_tiny_imagenet_missing_parts(tmp_path) -> None:
    write_tiny_imagenet(tmp_path)
    (tmp_path / "tiny-imagenet-200" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError, match="val_annotations.txt"):
        load_split("tiny_imagenet", "test", root=tmp_path)
    with pytest.raises(DataError, match="tiny-imagenet-200.zip"):
        load_split("tiny_imagenet", "test", root=tmp_path / "none")


# --- ImageSplit and stratified subsets ---------------------------------------------------------------

def make_split(labels: list[int], num_classes: int = 3) -> ImageSplit:
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return ImageSplit(images, torch.tensor(labels), [f"c{i}" for i in range(num_classes)], "toy")


def test_stratified_subset_keeps_first_per_class_in_dataset_order() -> None:
    split = make_split([2, 0, 1, 0, 2, 1, 0, 1, 2, 0, 1])
    sub = stratified_subset(split, per_class=2)
    # first two of class 0: idx 1, 3; class 1: idx 2, 5; class 2: idx 0, 4 -> dataset order
    assert sub.images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert sub.labels.tolist() == [2, 0, 1, 0, 2, 1]
    assert stratified_subset(split, per_class=3).images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    with pytest.raises(ConfigError, match="per_class"):
        stratified_subset(split, per_class=4)
    with pytest.raises(ConfigError, match="per_class"):
        stratified_subset(split, per_class=0)


def test_batches_cover_split_and_shuffle_reproducibly() -> None:
    split = make_split([0, 1, 2, 0, 1, 2, 0])
    batches = list(split.batches(3))
    assert [len(y) for _, y in batches] == [3, 3, 1]
    assert torch.equal(torch.cat([x for x, _ in batches]), split.float_images())
    assert batches[0][0].dtype == torch.float32 and float(batches[0][0].max()) <= 1.0

    def order(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.cat([x[:, 0, 0, 0] for x, _ in split.batches(2, shuffle=True, generator=generator)])

    assert torch.equal(order(5), order(5)) and sorted((order(5) * 255).round().tolist()) == list(range(7))
    with pytest.raises(ConfigError, match="batch_size"):
        next(split.batches(0))


def test_image_split_validates_its_tensors() -> None:
    with pytest.raises(ConfigError, match="images"):
        ImageSplit(torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long), ["a"], "toy")
    with pytest.raises(ConfigError, match="labels"):
        ImageSplit(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 3]), ["a", "b"], "toy")
