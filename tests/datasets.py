"""Build tiny CIFAR-10-like archives (canonical, image folder, malicious); serve them over HTTP."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import os
import pickle
import shlex
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from cnnopt.data import cifar10 as data

CLASS_NAMES = list(data.CLASS_NAMES)  # CIFAR-10's, in label order


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def make_arrays(n_train_per_class=10, n_test_per_class=4, seed=0, learnable=True,
                n_classes=10) -> dict:
    """Shuffled images and labels; with ``learnable`` each class is one mean colour + noise."""
    rng = np.random.default_rng(seed)
    palette = rng.permutation(np.array(
        [[r, g, b] for r in (40, 215) for g in (40, 215) for b in (40, 215)]
        + [[128, 128, 128], [128, 40, 215]], dtype=np.float64))[:n_classes]
    arrays = {}
    for split, n in (("train", n_train_per_class), ("test", n_test_per_class)):
        y = rng.permutation(np.repeat(np.arange(n_classes), n)).astype(np.int64)
        if learnable:
            x = palette[y][:, None, None, :] + rng.normal(0, 20, (len(y), 32, 32, 3))
        else:
            x = rng.uniform(0, 256, (len(y), 32, 32, 3))
        arrays[f"x_{split}"] = np.clip(x, 0, 255).astype(np.uint8)
        arrays[f"y_{split}"] = y
    return arrays


def write_arrays(path, n_train_per_class=10, n_test_per_class=4, seed=0) -> Path:
    """``make_arrays`` saved as the workflow's cached arrays (an .npz with class names), the
    input a training or evaluation reads."""
    np.savez(path, class_names=np.array([f"c{i}" for i in range(10)]),
             **make_arrays(n_train_per_class, n_test_per_class, seed))
    return Path(path)


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _chw_rows(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 3, 1, 2).reshape(len(x), 3072)


def _python_batches(arrays: dict) -> dict[str, bytes]:
    batches = {}
    splits = np.array_split(np.arange(len(arrays["y_train"])), 5)
    for i, index in enumerate(splits, start=1):
        batches[f"data_batch_{i}"] = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": arrays["y_train"][index].tolist(),
            b"data": _chw_rows(arrays["x_train"][index]),
        }
    batches["test_batch"] = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": arrays["y_test"].tolist(),
        b"data": _chw_rows(arrays["x_test"]),
    }
    batches["batches.meta"] = {
        b"label_names": [c.encode() for c in CLASS_NAMES],
        b"num_cases_per_batch": len(splits[0]),
        b"num_vis": 3072,
    }
    return {name: pickle.dumps(content, protocol=3) for name, content in batches.items()}


def make_canonical_python_archive(path, n_train_per_class=10, n_test_per_class=4, seed=0,
                                  learnable=True) -> str:
    """Write a tar.gz in the layout of cifar-10-python.tar.gz; return its md5."""
    payloads = _python_batches(make_arrays(n_train_per_class, n_test_per_class, seed, learnable))
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in payloads.items():
            _add_bytes(tar, f"cifar-10-batches-py/{name}", payload)
    return md5(path)


def make_canonical_binary_archive(path, n_train_per_class=10, n_test_per_class=4, seed=0,
                                  learnable=True) -> str:
    """Write a tar.gz in the layout of cifar-10-binary.tar.gz; return its md5."""
    arrays = make_arrays(n_train_per_class, n_test_per_class, seed, learnable)

    def records(x, y):
        return np.concatenate([y.astype(np.uint8)[:, None], _chw_rows(x)], axis=1).tobytes()

    with tarfile.open(path, "w:gz") as tar:
        splits = np.array_split(np.arange(len(arrays["y_train"])), 5)
        for i, index in enumerate(splits, start=1):
            _add_bytes(tar, f"cifar-10-batches-bin/data_batch_{i}.bin",
                       records(arrays["x_train"][index], arrays["y_train"][index]))
        _add_bytes(tar, "cifar-10-batches-bin/test_batch.bin",
                   records(arrays["x_test"], arrays["y_test"]))
        _add_bytes(tar, "cifar-10-batches-bin/batches.meta.txt",
                   ("\n".join(CLASS_NAMES) + "\n\n").encode())
    return md5(path)


def image_bytes(array: np.ndarray, mode="RGB", image_format="PNG") -> bytes:
    """Encode an RGB uint8 array as an image file in ``mode``."""
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format=image_format)
    return buffer.getvalue()


def make_image_folder_archive(path, fmt="tar.gz", n_train_per_class=3, n_test_per_class=2,
                              classes=("airplane", "bird", "cat"), mode="RGB", size=32,
                              test_classes=None, extra_files=None, top="images",
                              seed=0) -> dict:
    """Write ``[top/]{train,test}/<class>/NNNN.png`` as a tar.gz, zip or directory.

    ``mode`` is one Pillow mode or a list cycled over the images; ``extra_files`` maps paths
    (below ``top``) to raw bytes. Returns the arrays ``prepare`` should decode (extra files
    excluded): x_train, y_train, x_test, y_test, class_names.
    """
    rng = np.random.default_rng(seed)
    modes = [mode] if isinstance(mode, str) else list(mode)
    classes = sorted(classes)
    test_classes = classes if test_classes is None else sorted(test_classes)
    files, expected, counter = {}, {}, 0
    for split, names, n in (("train", classes, n_train_per_class),
                            ("test", test_classes, n_test_per_class)):
        xs, ys = [], []
        for label, name in enumerate(names):
            for i in range(n):
                array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                image_mode = modes[counter % len(modes)]
                counter += 1
                files[f"{split}/{name}/{i:04d}.png"] = image_bytes(array, image_mode)
                xs.append(np.asarray(Image.fromarray(array).convert(image_mode).convert("RGB")))
                ys.append(label)
        expected[f"x_{split}"] = np.array(xs, dtype=np.uint8).reshape(-1, size, size, 3)
        expected[f"y_{split}"] = np.array(ys, dtype=np.int64)
    expected["class_names"] = classes
    files.update(extra_files or {})
    files = {f"{top}/{name}" if top else name: payload for name, payload in files.items()}

    path = Path(path)
    if fmt == "dir":
        for name, payload in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(payload)
    elif fmt == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            for name, payload in files.items():
                archive.writestr(name, payload)
    elif fmt in ("tar.gz", "tar"):
        with tarfile.open(path, "w:gz" if fmt == "tar.gz" else "w") as tar:
            for name, payload in files.items():
                _add_bytes(tar, name, payload)
    else:
        raise ValueError(f"unknown fmt {fmt!r}")
    return expected


def make_traversal_tar(path) -> None:
    """A tar.gz whose member '../evil.txt' would land outside the extraction folder."""
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, "images/train/cat/0000.png", image_bytes(np.zeros((32, 32, 3), np.uint8)))
        _add_bytes(tar, "../evil.txt", b"escaped\n")


def make_symlink_tar(path) -> None:
    """A tar.gz holding a symlink member that points outside the archive."""
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, "images/train/cat/0000.png", image_bytes(np.zeros((32, 32, 3), np.uint8)))
        link = tarfile.TarInfo("images/test/cat/0000.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)


def truncate(path, keep_fraction: float) -> None:
    """Cut a file down to its first ``keep_fraction`` of bytes."""
    path = Path(path)
    payload = path.read_bytes()
    path.write_bytes(payload[: int(len(payload) * keep_fraction)])


class _Bomb:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(self.marker)}",)


def make_pickle_bomb_archive(path, marker) -> str:
    """Canonical python layout whose data_batch_1 would create ``marker`` when unpickled."""
    payloads = _python_batches(make_arrays(2, 1))
    payloads["data_batch_1"] = pickle.dumps({b"data": _Bomb(marker), b"labels": []}, protocol=3)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in payloads.items():
            _add_bytes(tar, f"cifar-10-batches-py/{name}", payload)
    return md5(path)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_directory(directory):
    """Serve ``directory`` over HTTP on 127.0.0.1; yield the base URL (no trailing slash)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def tiny_spec(epochs: int, variant: str = "initial") -> dict:
    """The resolved run spec of a tiny SGD training (two conv blocks of 8 and 16 filters, 50
    validation images) for arrays from ``write_arrays``."""
    from cnnopt.config import grid, schema

    cfg = schema.validate({
        "validation_size": 50,
        "defaults": {"epochs": epochs, "batch_size": 32,
                     "model": {"filters": [8, 16], "dense": [16]}},
        "optimizers": {"sgd": {"learning_rate": 0.05, "momentum": 0.9}},
        "variants": {variant: {"role": "initial"}},
        "grid": [{"optimizers": ["sgd"], "variants": [variant]}],
    })
    return grid.run_spec(cfg, "sgd", variant, 0)
