"""files.py: the one atomic writer (temporaries, no-clobber moves, fsync, permissions)."""
import os

import pytest

from jittor_sbvsr.files import PARTIAL, dump_atomic, is_temporary, temp_name, write_bytes


def test_write_bytes_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    write_bytes(target, b"new", fsync=True)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["a.bin"]


def test_no_overwrite_refuses_an_existing_file(tmp_path):
    """``overwrite=False`` keeps a file that is there (or appeared while writing) and names it in the error."""
    target = tmp_path / "a.bin"

    def dump(f):
        f.write(b"new")
        target.write_bytes(b"appeared meanwhile")

    with pytest.raises(FileExistsError) as err:
        dump_atomic(target, dump, fsync=True, overwrite=False)
    assert err.value.filename == str(target)
    assert target.read_bytes() == b"appeared meanwhile" and os.listdir(tmp_path) == ["a.bin"]
    fresh = tmp_path / "b.bin"
    dump_atomic(fresh, lambda f: f.write(b"b"), overwrite=False)
    assert fresh.read_bytes() == b"b" and sorted(os.listdir(tmp_path)) == ["a.bin", "b.bin"]


def test_failed_dump_removes_the_temporary(tmp_path):
    def dump(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump_atomic(tmp_path / "a.bin", dump)
    assert os.listdir(tmp_path) == []


def test_new_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o640
    assert not [n for n in os.listdir(tmp_path) if PARTIAL in n]


def test_temporaries_are_recognised_by_name():
    made = temp_name("/run/video/00000002.png")
    assert is_temporary(made) and is_temporary(made + ".npy")  # numpy.save appends its extension
    for name in ("00000002.png", "kernel.npy", "x.partial-1a2b3c4.png", "x.partial-nothexxx", "partial-1a2b3c4d"):
        assert not is_temporary(name), name
