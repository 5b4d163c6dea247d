"""Writing output files safely: atomic replacement through temporaries, and append-only text files.

A temporary is ``<target>.partial-<8 hex digits>`` next to its target (``00000002.png.partial-1a2b3c4d``). It
ends in no image, video or weights extension, so a run killed without warning (SIGKILL, power loss) leaves
nothing that a later run would take as an input frame; such leftovers can be deleted by that suffix.

Write errors are raised as ``OSError`` naming the file the user asked for (not the temporary, and never
without a name, as ``write()`` and ``flush()`` errors otherwise are), so that every command can report
``<path>: <reason>`` in one line.
"""
import contextlib
import os
import uuid

PARTIAL = ".partial-"


def temp_name(path):
    """A fresh temporary name for writing ``path``, in the same folder."""
    return f"{os.fspath(path)}{PARTIAL}{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def errors_name(path):
    """Re-raise an ``OSError`` that names no file, or names a temporary, as the same error on ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is not None and PARTIAL not in os.fspath(e.filename):
            raise
        raise OSError(e.errno, e.strerror or str(e), os.fspath(path)) from e


def write_atomic(path, write):
    """Call ``write(tmp)`` on a temporary name in ``path``'s folder, then ``os.replace`` it onto ``path``, so an
    interrupted run never leaves a truncated file (the temporary is removed on any exception, Ctrl-C and
    SIGTERM included)."""
    tmp = temp_name(path)
    try:
        with errors_name(path):
            write(tmp)
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
