"""files.write_new_file / open_private: a new private file, never through an existing name."""

from __future__ import annotations

import errno
import os
import pathlib
import stat

import pytest

from dranet_core.files import open_private, write_new_file


def test_write_new_file_creates_a_private_regular_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "new"
    write_new_file(path, b"x" * 100_000)
    st = path.lstat()
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert path.read_bytes() == b"x" * 100_000


@pytest.mark.parametrize("kind", ["file", "symlink-to-file", "dangling-symlink", "fifo", "dir"])
def test_write_new_file_refuses_any_existing_name_and_leaves_it_alone(
    tmp_path: pathlib.Path, kind: str
) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    path = tmp_path / "name"
    if kind == "file":
        path.write_bytes(b"keep")
    elif kind == "symlink-to-file":
        path.symlink_to(target)
    elif kind == "dangling-symlink":
        path.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(OSError) as caught:
        write_new_file(path, b"new")
    assert caught.value.errno == errno.EEXIST
    assert target.read_bytes() == b"keep"
    assert not (tmp_path / "nowhere").exists()
    if kind == "file":
        assert path.read_bytes() == b"keep"


def test_open_private_for_an_existing_name_refuses_links_and_fifos(tmp_path: pathlib.Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    os.mkfifo(tmp_path / "p")
    with pytest.raises(OSError, match="symbolic link"):
        open_private(tmp_path / "l", os.O_RDONLY)
    with pytest.raises(OSError, match="not a regular file"):
        open_private(tmp_path / "p", os.O_RDONLY)  # and it did not block on the FIFO
    fd = open_private(tmp_path / "f", os.O_RDONLY)
    try:
        assert os.get_inheritable(fd) is False
        assert os.get_blocking(fd) is True
    finally:
        os.close(fd)


def test_a_new_file_descriptor_is_not_inherited(tmp_path: pathlib.Path) -> None:
    fd = open_private(tmp_path / "n", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        assert os.get_inheritable(fd) is False
        assert stat.S_ISREG(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
