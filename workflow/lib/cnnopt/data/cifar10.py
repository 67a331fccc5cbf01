"""Fetch and decode CIFAR-10 (or a CIFAR-like image folder) into one cached array file.

Three source formats are understood: the canonical python archive (pickled batches), the
canonical binary archive (raw records) and an image folder (``train/<class>/*`` and
``test/<class>/*``, as an archive or a directory). Archives are read member by member in
memory, never extracted, and pickles are only ever read from checksum-verified archives
through an unpickler that accepts nothing but numpy arrays.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import logging
import pickle
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

from cnnopt.common.errors import DataError
from cnnopt.common.files import atomic_path, write_json

log = logging.getLogger(__name__)

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

CANONICAL_SOURCES = {
    "cifar10-python": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a",
        "folder": "cifar-10-batches-py",
    },
    "cifar10-binary": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "md5": "c32a1d4ab5d03f1284b67883e8d87530",
        "folder": "cifar-10-batches-bin",
    },
}

IMAGE_SHAPE = (32, 32, 3)
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "class_names")
_RECORD_BYTES = 1 + 32 * 32 * 3
_HASH_LENGTHS = {"md5": 32, "sha256": 64}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}


def is_url(source) -> bool:
    """True when ``source`` is an http, https or ftp URL."""
    parsed = urlparse(str(source))
    return parsed.scheme in ("http", "https", "ftp") and bool(parsed.netloc)


# --------------------------------------------------------------------------- download


def _parse_checksum(checksum: str) -> tuple[str, str]:
    """Split ``"md5:<hex>"`` / ``"sha256:<hex>"`` into (algorithm, lowercase hex)."""
    alg, _, digest = str(checksum).partition(":")
    alg, digest = alg.strip().lower(), digest.strip().lower()
    if alg not in _HASH_LENGTHS or not re.fullmatch(f"[0-9a-f]{{{_HASH_LENGTHS[alg]}}}", digest):
        raise DataError(
            f"invalid checksum {checksum!r}: expected 'md5:<32 hex digits>' or "
            "'sha256:<64 hex digits>'"
        )
    return alg, digest


def _route_pooch_logging() -> None:
    """Send pooch's messages through the standard logging tree instead of its own handler."""
    import pooch

    pooch_log = pooch.get_logger()
    pooch_log.handlers.clear()
    pooch_log.setLevel(logging.INFO)
    pooch_log.parent = logging.getLogger(__name__)
    pooch_log.propagate = True


def fetch(url: str, dest: Path, checksum: str | None, retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` with pooch, verifying ``checksum`` ("md5:..."/"sha256:...").

    Without a checksum the published md5 of a canonical URL is used; any other URL is
    downloaded unverified (with a warning). The file appears at ``dest`` only once complete
    and verified.
    """
    import pooch
    import requests

    dest = Path(dest)
    if not checksum:
        checksum = next(
            (f"md5:{c['md5']}" for c in CANONICAL_SOURCES.values() if c["url"] == url), None
        )
    if checksum is None:
        log.warning("no checksum given for %s: downloading it without verification", url)
    else:
        checksum = "{}:{}".format(*_parse_checksum(checksum))

    _route_pooch_logging()
    registry = pooch.create(
        path=dest.parent,
        base_url="",
        registry={dest.name: checksum},
        urls={dest.name: url},
        retry_if_failed=retries,
    )
    log.info("downloading %s to %s", url, dest)
    try:
        registry.fetch(dest.name)
    except ValueError as exc:
        found = re.search(r"expected (\S+) but got (\S+?)\.(\s|$)", str(exc))
        if not found:
            raise DataError(f"cannot download {url}: {exc}") from None
        expected, actual = found.group(1), found.group(2)
        raise DataError(
            f"checksum mismatch for {url}: expected {expected}, got "
            f"{expected.split(':')[0]}:{actual}; the download was discarded"
        ) from None
    except (requests.exceptions.RequestException, OSError, ftplib.Error) as exc:
        raise DataError(
            f"cannot download {url} after {retries + 1} attempt(s): {exc}".replace("\n", " ")
        ) from None
    return dest


# --------------------------------------------------------------------------- reading sources


def _file_hashes(path: Path) -> dict[str, str]:
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def _safe_name(name: str, archive: Path) -> str:
    """Return the member name as a relative posix path; refuse absolute or '..' names."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
        raise DataError(f"refusing archive {archive}: unsafe member path {name!r}")
    return "/".join(part for part in path.parts if part not in ("", "."))


def _read_tar(path: Path) -> dict[str, bytes]:
    members = {}
    with tarfile.open(path, mode="r|*") as tar:
        for member in tar:
            name = _safe_name(member.name, path)
            if member.issym() or member.islnk():
                raise DataError(f"refusing archive {path}: link member {member.name!r}")
            if member.isdir():
                continue
            if not member.isreg():
                raise DataError(f"refusing archive {path}: special file member {member.name!r}")
            members[name] = tar.extractfile(member).read()
    return members


def _read_zip(path: Path) -> dict[str, bytes]:
    members = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = _safe_name(info.filename, path)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise DataError(f"refusing archive {path}: link member {info.filename!r}")
            if info.is_dir():
                continue
            if kind not in (0, stat.S_IFREG):
                raise DataError(f"refusing archive {path}: special file member {info.filename!r}")
            members[name] = archive.read(info)
    return members


def _read_archive(path: Path) -> dict[str, bytes]:
    """Read every regular file of a tar or zip archive into memory, keyed by its path."""
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        return _read_tar(path)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        detail = str(exc).replace("\n", " ") or type(exc).__name__
        raise DataError(
            f"cannot read archive {path}: truncated, corrupt or not a tar/zip archive ({detail})"
        ) from None


def _read_directory(path: Path) -> dict[str, bytes]:
    return {
        file.relative_to(path).as_posix(): file.read_bytes()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def _find_folder(members: dict[str, bytes], folder: str, first_file: str) -> str | None:
    """Return the prefix (ending in ``folder/``) of the member ``.../folder/first_file``."""
    for name in members:
        parts = name.split("/")
        if parts[-2:] == [folder, first_file]:
            return "/".join(parts[:-1]) + "/"
    return None


def _member(members: dict[str, bytes], prefix: str, name: str, source: Path) -> bytes:
    try:
        return members[prefix + name]
    except KeyError:
        raise DataError(f"archive {source} lacks {prefix}{name}") from None


# --------------------------------------------------------------------------- decoders


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    def find_class(self, module, name):
        if (module, name) in {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }:
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise DataError(f"pickle payload refused: it references {module}.{name}")


def _unpickle(payload: bytes, what: str) -> dict:
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    except Exception as exc:
        raise DataError(f"{what}: cannot unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{what}: expected a pickled dict, found {type(batch).__name__}")
    return batch


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _check_labels(labels: np.ndarray, n_classes: int, what: str) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{what}: labels outside 0..{n_classes - 1}")
    return labels.astype(np.int64)


def _chw_rows_to_images(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _decode_python(members, prefix, source):
    meta = _unpickle(_member(members, prefix, "batches.meta", source), f"{source} batches.meta")
    class_names = [_text(n) for n in meta.get(b"label_names", meta.get("label_names", []))]
    if not class_names:
        raise DataError(f"{source}: batches.meta has no label_names")

    def batch(name):
        what = f"{source} {name}"
        content = _unpickle(_member(members, prefix, name, source), what)
        data = np.asarray(content.get(b"data"))
        labels = np.asarray(content.get(b"labels"))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{what}: data is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
        if labels.shape != (len(data),):
            raise DataError(f"{what}: {labels.size} labels for {len(data)} images")
        return _chw_rows_to_images(data), _check_labels(labels, len(class_names), what)

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = batch("test_batch")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, class_names, {}


def _decode_binary(members, prefix, source):
    meta = _member(members, prefix, "batches.meta.txt", source).decode("utf-8")
    class_names = [line.strip() for line in meta.splitlines() if line.strip()]

    def batch(name):
        what = f"{source} {name}"
        raw = _member(members, prefix, name, source)
        if not raw or len(raw) % _RECORD_BYTES:
            raise DataError(
                f"{what}: {len(raw)} bytes is not a whole number of {_RECORD_BYTES}-byte records"
            )
        records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD_BYTES)
        labels = _check_labels(records[:, 0], len(class_names), what)
        return _chw_rows_to_images(records[:, 1:]), labels

    train = [batch(f"data_batch_{i}.bin") for i in range(1, 6)]
    x_test, y_test = batch("test_batch.bin")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, class_names, {}


def _image_folder_layout(members, source):
    """Map split -> class -> sorted member names, for ``[top/]{train,test}/<class>/<file>``."""
    visible = [
        name for name in members
        if not any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))
    ]
    roots = set()
    for name in visible:
        parts = name.split("/")
        for depth in (0, 1):
            if len(parts) > depth + 1 and parts[depth] in ("train", "test"):
                roots.add("/".join(parts[:depth]))
                break
    if len(roots) != 1:
        raise DataError(
            f"{source} is not a CIFAR-10 archive and not an image folder with train/<class>/* "
            "and test/<class>/* (optionally under one top-level folder)"
        )
    root = roots.pop()
    prefix = f"{root}/" if root else ""
    layout = {"train": {}, "test": {}}
    for name in sorted(visible):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        if parts[0] not in layout:
            continue
        if len(parts) != 3:
            raise DataError(
                f"{source}: unexpected file {name}; expected {prefix}{parts[0]}/<class>/<image>"
            )
        layout[parts[0]].setdefault(parts[1], []).append(name)
    for split, other in (("train", "test"), ("test", "train")):
        missing = sorted(set(layout[other]) - set(layout[split]))
        if missing:
            raise DataError(
                f"{source}: class {missing[0]!r} has images in {other} but none in {split}"
            )
    return layout


def _conversion_key(mode: str) -> str:
    if mode in _GRAY_MODES or mode.startswith("I;16"):
        return "grayscale_to_rgb"
    if mode == "RGBA":
        return "rgba_to_rgb"
    if mode in ("P", "PA"):
        return "palette_to_rgb"
    return f"{mode.lower()}_to_rgb"


def _decode_image(payload: bytes, name: str, source) -> tuple[np.ndarray, str | None]:
    """Decode one 32x32 image to an RGB array; also return the conversion made, if any."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(payload)) as image:
            if image.size != IMAGE_SHAPE[1::-1]:
                raise DataError(
                    f"{source}: image {name} is {image.size[0]}x{image.size[1]}; expected 32x32 "
                    "(images are not resized)"
                )
            if image.mode == "RGB":
                return np.asarray(image), None
            if image.mode.startswith("I;16"):
                gray = (np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8)
                return np.repeat(gray[:, :, None], 3, axis=2), _conversion_key(image.mode)
            return np.asarray(image.convert("RGB")), _conversion_key(image.mode)
    except DataError:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        raise DataError(f"{source}: cannot decode image {name} ({detail})") from None


def _decode_image_folder(members, source):
    layout = _image_folder_layout(members, source)
    class_names = sorted(layout["train"])
    conversions = {}
    arrays = []
    for split in ("train", "test"):
        names = [(label, n) for label, c in enumerate(class_names) for n in layout[split][c]]
        x = np.empty((len(names), *IMAGE_SHAPE), dtype=np.uint8)
        y = np.fromiter((label for label, _ in names), dtype=np.int64, count=len(names))
        for i, (_, name) in enumerate(names):
            x[i], conversion = _decode_image(members[name], name, source)
            if conversion:
                conversions[conversion] = conversions.get(conversion, 0) + 1
        arrays += [x, y]
    return (*arrays, class_names, conversions)


# format -> (first batch file, decoder) of the two canonical archive layouts
_CANONICAL_LAYOUTS = {
    "cifar10-python": ("data_batch_1", _decode_python),
    "cifar10-binary": ("data_batch_1.bin", _decode_binary),
}


# --------------------------------------------------------------------------- prepare / load


def prepare(
    source: Path,
    out_npz: Path,
    out_manifest: Path,
    checksum: str | None = None,
    source_label: str | None = None,
) -> dict:
    """Decode ``source`` (archive or directory) to ``out_npz``; describe it in ``out_manifest``.

    Returns the manifest. On any error neither output exists afterwards.
    """
    source, out_npz, out_manifest = Path(source), Path(out_npz), Path(out_manifest)
    try:
        arrays, manifest = _decode(source, checksum, source_label)
        with atomic_path(out_npz) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        write_json(out_manifest, manifest)
    except BaseException:
        out_npz.unlink(missing_ok=True)
        out_manifest.unlink(missing_ok=True)
        raise
    log.info(
        "prepared %s: %d train and %d test images of %d classes (%s)",
        manifest["name"], len(arrays["y_train"]), len(arrays["y_test"]),
        len(manifest["class_names"]), manifest["format"],
    )
    return manifest


def _read_source(source: Path, checksum: str | None):
    """Return (hashes, verified checksum or None, members) of an archive or directory."""
    if not source.exists():
        raise DataError(f"data source {source} does not exist")
    if source.is_dir():
        if checksum:
            raise DataError(
                f"cannot verify checksum {checksum} of directory {source}; give an archive"
            )
        log.info("reading image folder %s", source)
        return {"md5": None, "sha256": None}, None, _read_directory(source)
    hashes, verified = _file_hashes(source), None
    if checksum:
        alg, expected = _parse_checksum(checksum)
        if hashes[alg] != expected:
            raise DataError(
                f"checksum mismatch for {source}: expected {alg}:{expected}, "
                f"got {alg}:{hashes[alg]}"
            )
        verified = f"{alg}:{expected}"
    log.info("reading archive %s (sha256 %s)", source, hashes["sha256"])
    return hashes, verified, _read_archive(source)


def _decode(source: Path, checksum: str | None, source_label: str | None):
    """Read and decode ``source``; return (arrays for the npz, manifest)."""
    hashes, verified, members = _read_source(source, checksum)
    fmt, canonical = "image-folder", False
    for candidate, (first_batch, decoder) in _CANONICAL_LAYOUTS.items():
        info = CANONICAL_SOURCES[candidate]
        prefix = _find_folder(members, info["folder"], first_batch)
        if prefix is None:
            continue
        fmt, canonical = candidate, hashes["md5"] == info["md5"]
        if canonical and not verified:
            verified = f"md5:{info['md5']}"
        if candidate == "cifar10-python" and not verified:
            raise DataError(
                f"{source} has the CIFAR-10 python layout but is not the canonical archive "
                f"(md5 {hashes['md5']}): refusing to unpickle unverified data; pass "
                "data_checksum to vouch for it"
            )
        decoded = decoder(members, prefix, source)
        break
    else:
        decoded = _decode_image_folder(members, source)
    del members

    x_train, y_train, x_test, y_test, class_names, conversions = decoded
    arrays = {
        "x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
        "class_names": np.array(class_names, dtype=str),
    }
    if canonical:
        name = "CIFAR-10 (canonical archive)"
    else:
        kind = "directory" if source.is_dir() else "archive"
        name = f"{fmt} {kind} {source.name} (not the canonical archive)"
    manifest = {
        "source": source_label if source_label is not None else str(source),
        "format": fmt,
        "canonical": canonical,
        "sha256": hashes["sha256"],
        "md5": hashes["md5"],
        "checksum_verified": verified,
        "class_names": list(class_names),
        "counts": {
            split: {c: int(np.sum(y == i)) for i, c in enumerate(class_names)}
            for split, y in (("train", y_train), ("test", y_test))
        },
        "image_shape": list(IMAGE_SHAPE),
        "conversions": {"grayscale_to_rgb": 0, "rgba_to_rgb": 0, **conversions},
        "name": name,
    }
    return arrays, manifest


def load(npz_path) -> dict:
    """Load the arrays written by :func:`prepare`; ``class_names`` comes back as a list of str."""
    try:
        with np.load(npz_path) as npz:
            data = {key: npz[key] for key in _ARRAY_KEYS}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot load prepared data {npz_path}: {exc}") from None
    data["class_names"] = [str(c) for c in data["class_names"]]
    return data
