"""cnnopt.data.cifar10: download, verification, safe archive reading and decoding (real files, no mocks)."""

import hashlib
import io
import stat
import tarfile
import zipfile

import datasets
import numpy as np
import pytest

from cnnopt.common.errors import DataError
from cnnopt.common.files import read_json
from cnnopt.data import cifar10 as data


def prepare(tmp_path, source, **kwargs):
    """Run data.prepare into tmp_path/out; return (manifest, arrays)."""
    out = tmp_path / "out"
    manifest = data.prepare(source, out / "cifar10.npz", out / "manifest.json", **kwargs)
    assert read_json(out / "manifest.json") == manifest
    return manifest, data.load(out / "cifar10.npz")


def assert_no_outputs(tmp_path):
    out = tmp_path / "out"
    assert not (out / "cifar10.npz").exists()
    assert not (out / "manifest.json").exists()
    assert not out.exists() or not list(out.iterdir())


def assert_arrays(arrays, expected):
    for key in ("x_train", "y_train", "x_test", "y_test"):
        assert arrays[key].dtype == expected[key].dtype, key
        np.testing.assert_array_equal(arrays[key], expected[key], err_msg=key)


def test_is_url():
    assert data.is_url("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")
    assert data.is_url("ftp://example.org/x.tar.gz")
    assert not data.is_url("/work/shared/datasets/cifar10-jpeg.tar.gz")
    assert not data.is_url("file:///tmp/x.tar.gz")


def test_fetch_over_http_then_prepare_python_archive(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    checksum = "md5:" + datasets.make_canonical_python_archive(served / "cifar.tar.gz", 10, 4)
    dest = tmp_path / "download" / "cifar.tar.gz"
    with datasets.serve_directory(served) as base:
        assert data.fetch(f"{base}/cifar.tar.gz", dest, checksum, retries=0) == dest
    assert dest.read_bytes() == (served / "cifar.tar.gz").read_bytes()

    manifest, arrays = prepare(tmp_path, dest, checksum=checksum, source_label="http://x/c.tgz")
    assert_arrays(arrays, datasets.make_arrays(10, 4))
    assert arrays["x_train"].shape == (100, 32, 32, 3) and arrays["x_test"].shape == (40, 32, 32, 3)
    assert arrays["class_names"] == datasets.CLASS_NAMES
    assert manifest["format"] == "cifar10-python"
    assert manifest["canonical"] is False
    assert manifest["checksum_verified"] == checksum
    assert manifest["source"] == "http://x/c.tgz"
    assert manifest["md5"] == checksum[4:]
    assert manifest["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert manifest["counts"]["train"] == {c: 10 for c in datasets.CLASS_NAMES}
    assert manifest["counts"]["test"] == {c: 4 for c in datasets.CLASS_NAMES}
    assert manifest["image_shape"] == [32, 32, 3]
    assert manifest["class_names"] == datasets.CLASS_NAMES
    assert "not the canonical archive" in manifest["name"]


def test_fetch_wrong_checksum_leaves_nothing(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    actual = datasets.make_canonical_python_archive(served / "cifar.tar.gz", 2, 1)
    wrong = "md5:" + "0" * 32
    download = tmp_path / "download"
    with datasets.serve_directory(served) as base:
        with pytest.raises(DataError) as error:
            data.fetch(f"{base}/cifar.tar.gz", download / "cifar.tar.gz", wrong, retries=0)
    message = str(error.value)
    assert wrong in message and actual in message and "cifar.tar.gz" in message
    assert "\n" not in message
    assert list(download.iterdir()) == []


def test_fetch_without_checksum_warns_and_routes_pooch_logging(tmp_path, caplog):
    served = tmp_path / "served"
    served.mkdir()
    (served / "file.bin").write_bytes(b"payload")
    caplog.set_level("INFO")
    with datasets.serve_directory(served) as base:
        data.fetch(f"{base}/file.bin", tmp_path / "file.bin", None, retries=0)
        with pytest.raises(DataError, match="cannot download .*404"):
            data.fetch(f"{base}/absent.bin", tmp_path / "absent.bin", None, retries=0)
    assert (tmp_path / "file.bin").read_bytes() == b"payload"
    assert not (tmp_path / "absent.bin").exists()
    assert any("without verification" in r.message and r.levelname == "WARNING"
               for r in caplog.records)
    assert any(r.name == "pooch" for r in caplog.records)


def test_fetch_unreachable_server(tmp_path):
    with datasets.serve_directory(tmp_path) as base:
        pass  # the port is closed once the server has shut down
    with pytest.raises(DataError, match="cannot download"):
        data.fetch(f"{base}/missing.tar.gz", tmp_path / "x.tar.gz", None, retries=0)
    assert not (tmp_path / "x.tar.gz").exists()


def test_fetch_rejects_malformed_checksum(tmp_path):
    with pytest.raises(DataError, match="invalid checksum"):
        data.fetch("http://127.0.0.1:9/x.tar.gz", tmp_path / "x.tar.gz", "md5:xyz", retries=0)


def test_prepare_checksum_mismatch(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    actual = datasets.make_canonical_python_archive(archive, 2, 1)
    with pytest.raises(DataError, match=f"expected md5:{'1' * 32}, got md5:{actual}"):
        prepare(tmp_path, archive, checksum="md5:" + "1" * 32)
    assert_no_outputs(tmp_path)


def test_binary_archive_matches_python_archive(tmp_path):
    archive = tmp_path / "cifar-bin.tar.gz"
    datasets.make_canonical_binary_archive(archive, 10, 4, seed=3)
    manifest, arrays = prepare(tmp_path, archive)
    assert manifest["format"] == "cifar10-binary"
    assert manifest["checksum_verified"] is None and manifest["canonical"] is False
    assert_arrays(arrays, datasets.make_arrays(10, 4, seed=3))
    assert arrays["class_names"] == datasets.CLASS_NAMES


def test_binary_archive_with_partial_record(tmp_path):
    archive = tmp_path / "cifar-bin.tar.gz"
    datasets.make_canonical_binary_archive(archive, 2, 1)
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(broken, "w:gz") as dst:
        for member in src.getmembers():
            payload = src.extractfile(member).read()
            if member.name.endswith("test_batch.bin"):
                payload = payload[:-1]
            member.size = len(payload)
            dst.addfile(member, io.BytesIO(payload))
    with pytest.raises(DataError, match="not a whole number of 3073-byte records"):
        prepare(tmp_path, broken)
    assert_no_outputs(tmp_path)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip", "dir"])
def test_image_folder(tmp_path, fmt):
    source = tmp_path / f"images.{fmt}"
    expected = datasets.make_image_folder_archive(source, fmt=fmt)
    manifest, arrays = prepare(tmp_path, source)
    assert_arrays(arrays, expected)
    assert arrays["class_names"] == ["airplane", "bird", "cat"]
    assert manifest["format"] == "image-folder"
    assert manifest["counts"]["train"] == {"airplane": 3, "bird": 3, "cat": 3}
    assert manifest["conversions"] == {"grayscale_to_rgb": 0, "rgba_to_rgb": 0}
    if fmt == "dir":
        assert manifest["sha256"] is None and manifest["md5"] is None
        assert manifest["name"].startswith("image-folder directory")


def test_image_folder_without_top_folder(tmp_path):
    source = tmp_path / "flat.zip"
    expected = datasets.make_image_folder_archive(source, fmt="zip", top="")
    assert_arrays(prepare(tmp_path, source)[1], expected)


def test_image_folder_converts_and_counts_modes(tmp_path):
    source = tmp_path / "modes.tar.gz"
    expected = datasets.make_image_folder_archive(source, mode=["RGB", "L", "RGBA", "LA"])
    manifest, arrays = prepare(tmp_path, source)
    assert_arrays(arrays, expected)
    # 15 images cycle through the modes: 4 L + 3 LA grayscale, 4 RGBA
    assert manifest["conversions"] == {"grayscale_to_rgb": 7, "rgba_to_rgb": 4}


def test_image_folder_wrong_size(tmp_path):
    source = tmp_path / "images.tar.gz"
    big = datasets.image_bytes(np.zeros((32, 33, 3), np.uint8))
    datasets.make_image_folder_archive(source, extra_files={"train/cat/big.png": big})
    with pytest.raises(DataError, match=r"images/train/cat/big.png is 33x32; expected 32x32"):
        prepare(tmp_path, source)
    assert_no_outputs(tmp_path)


def test_image_folder_class_missing_from_test(tmp_path):
    source = tmp_path / "images.zip"
    datasets.make_image_folder_archive(source, fmt="zip", test_classes=["airplane", "cat"])
    with pytest.raises(DataError, match=r"class 'bird' has images in train but none in test"):
        prepare(tmp_path, source)
    assert_no_outputs(tmp_path)


def test_image_folder_unreadable_image(tmp_path):
    source = tmp_path / "images"
    datasets.make_image_folder_archive(
        source, fmt="dir", extra_files={"test/bird/broken.jpg": b"not an image at all"})
    with pytest.raises(DataError, match=r"cannot decode image images/test/bird/broken.jpg"):
        prepare(tmp_path, source)
    assert_no_outputs(tmp_path)


def test_unknown_layout(tmp_path):
    source = tmp_path / "other.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("photos/cat.png", datasets.image_bytes(np.zeros((32, 32, 3), np.uint8)))
    with pytest.raises(DataError, match="not a CIFAR-10 archive"):
        prepare(tmp_path, source)
    plain = tmp_path / "plain.txt"
    plain.write_text("hello\n")
    with pytest.raises(DataError, match="cannot read archive"):
        prepare(tmp_path, plain)


@pytest.mark.parametrize("builder", ["python", "image-folder"])
def test_truncated_archive(tmp_path, builder):
    archive = tmp_path / "cifar.tar.gz"
    if builder == "python":
        datasets.make_canonical_python_archive(archive, 10, 4)
    else:
        datasets.make_image_folder_archive(archive, n_train_per_class=20)
    datasets.truncate(archive, 0.6)
    with pytest.raises(DataError, match=r"cannot read archive .*truncated") as error:
        prepare(tmp_path, archive)
    assert "\n" not in str(error.value)
    assert_no_outputs(tmp_path)


def test_failure_removes_stale_outputs(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "cifar10.npz").write_bytes(b"stale")
    (out / "manifest.json").write_text("{}")
    archive = tmp_path / "bad.tar.gz"
    datasets.make_traversal_tar(archive)
    with pytest.raises(DataError):
        prepare(tmp_path, archive)
    assert_no_outputs(tmp_path)


def test_path_traversal_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    archive = work / "evil.tar.gz"
    datasets.make_traversal_tar(archive)
    with pytest.raises(DataError, match=r"unsafe member path '../evil.txt'"):
        prepare(work, archive)
    assert not (tmp_path / "evil.txt").exists() and not (work / "evil.txt").exists()
    assert_no_outputs(work)


def test_symlink_refused(tmp_path):
    archive = tmp_path / "link.tar.gz"
    datasets.make_symlink_tar(archive)
    with pytest.raises(DataError, match="link member"):
        prepare(tmp_path, archive)
    assert_no_outputs(tmp_path)


def test_zip_symlink_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("images/train/cat/0000.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataError, match="link member"):
        prepare(tmp_path, archive)


def test_unverified_pickles_are_not_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    archive = tmp_path / "bomb.tar.gz"
    datasets.make_pickle_bomb_archive(archive, marker)
    with pytest.raises(DataError, match="refusing to unpickle unverified data; pass data_checksum"):
        prepare(tmp_path, archive)
    assert not marker.exists()
    assert_no_outputs(tmp_path)


def test_verified_pickle_bomb_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    archive = tmp_path / "bomb.tar.gz"
    checksum = "md5:" + datasets.make_pickle_bomb_archive(archive, marker)
    with pytest.raises(DataError, match="pickle payload refused") as error:
        prepare(tmp_path, archive, checksum=checksum)
    assert "system" in str(error.value)
    assert not marker.exists()
    assert_no_outputs(tmp_path)


def test_load_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot load prepared data"):
        data.load(tmp_path / "absent.npz")
