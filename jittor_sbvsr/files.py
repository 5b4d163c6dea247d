"""Writing output files safely: atomic replacement through temporaries, and append-only text files.

A temporary is ``<target>.partial-<8 hex digits>`` next to its target (``00000002.png.partial-1a2b3c4d``). It
ends in no image, video or weights extension, so a run killed without warning (SIGKILL, power loss) leaves
nothing that a later run would take as an input frame; such leftovers can be deleted by that suffix.

Write errors are raised as ``OSError`` naming the file the user asked for (not the temporary, and never
without a name, as ``write()`` and ``flush()`` errors otherwise are), so that every command can report
``<path>: <reason>`` in one line.
"""
import contextlib
import errno
import os
import re
import uuid

PARTIAL = ".partial-"
# a name temp_name made; a writer may have appended an extension to it (numpy.save adds ".npy")
_TEMPORARY = re.compile(re.escape(PARTIAL) + r"[0-9a-f]{8}(\.[^.]*)?$")


def temp_name(path):
    """A fresh temporary name for writing ``path``, in the same folder."""
    return f"{os.fspath(path)}{PARTIAL}{uuid.uuid4().hex[:8]}"


def is_temporary(name):
    """Whether the file name ``name`` is a temporary of ``temp_name`` (left by an interrupted write)."""
    return _TEMPORARY.search(os.path.basename(name)) is not None


@contextlib.contextmanager
def errors_name(path):
    """Re-raise an ``OSError`` that names no file, or names a temporary, as the same error on ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None and PARTIAL not in os.fspath(e.filename):
            raise
        raise OSError(e.errno, e.strerror or str(e), os.fspath(path)) from e


def write_atomic(path, write, overwrite=True):
    """Call ``write(tmp)`` on a temporary name in ``path``'s folder, then move it onto ``path``, so an
    interrupted run never leaves a truncated file (the temporary is removed on any exception, Ctrl-C and
    SIGTERM included). ``overwrite=False`` never replaces an existing ``path``, not even one that appeared
    while writing: the move is then a hard link, and an existing file raises FileExistsError."""
    tmp = temp_name(path)
    try:
        with errors_name(path):
            write(tmp)
            if overwrite:
                os.replace(tmp, path)
            else:
                _link_new(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _link_new(tmp, path):
    """Give ``tmp``'s file the name ``path`` unless that name exists (FileExistsError)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(path)) from None
        os.replace(tmp, path)


def dump_atomic(path, dump, fsync=False, overwrite=True):
    """``write_atomic`` through an open binary file: ``dump(f)`` writes the contents (the file is created with
    the permissions the umask gives any new file). ``fsync=True`` forces the data to disk before the rename, so
    that a crash never leaves ``path`` naming incomplete data (checkpoints, converted weights)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            dump(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())

    write_atomic(path, write, overwrite)


def write_bytes(path, data, fsync=False):
    """``dump_atomic`` of a bytes object (text: encode it first)."""
    dump_atomic(path, lambda f: f.write(data), fsync)


class AppendFile:
    """A text file written a line at a time without a buffer (mode ``"a"`` or ``"w"``).

    Each ``write`` goes straight to the operating system, so a failed one (disk full) raises at once, naming
    the file, and leaves nothing pending: closing afterwards cannot fail a second time.
    """

    def __init__(self, path, mode="a"):
        self.path = os.fspath(path)
        with errors_name(self.path):
            self._file = open(self.path, mode + "b", buffering=0)

    def write(self, text):
        data = text.encode("utf-8")
        with errors_name(self.path):
            while data:
                data = data[self._file.write(data):]

    def close(self):
        self._file.close()
