"""The output folder of one run: a name no other run has, a lock held while the run writes there, and a check
that it lies apart from the inputs.

Two runs writing into one folder interleave their metrics and overwrite each other's summary, and outputs
written among the input frames replace or mix with them. So:

* a default name (``infer_<date-time>``, ``infer_demo``, ``infer_<preset>``) gets a suffix ``_2``, ``_3``, ...
  when a folder of that name exists; the folder is made with an exclusive ``mkdir``, so two runs started in
  the same second still get two folders;
* a folder named by the user that already holds files of an earlier run is refused unless ``overwrite``, or
  ``resume``, which continues that run and so needs the folder to exist;
* a folder another process is writing is always refused: every run holds an ``flock`` on ``<folder>/.lock``
  (``lock``), which the operating system releases when the process ends, however it ends. A process forked
  from the run (Jittor's compiler pool) would inherit the lock and keep it after the run was killed, so forked
  children drop their copy at once;
* an output folder equal to, inside or around an input folder is refused (``check_apart``).
"""
import fcntl
import os

from .video_io import InputError

LOCK_FILE = ".lock"
MAX_SUFFIX = 1000


class RunDir:
    """A claimed run folder: ``path``, locked until ``close()`` (``lock_file`` None: a folder that another
    process of the same run holds the lock of)."""

    def __init__(self, path, lock_file):
        self.path, self._lock = path, lock_file

    def close(self):
        if self._lock is not None:
            self._lock.close()


def _not_writable(path, err):
    return InputError(path, f"output folder is not writable ({err.strerror or err})")


class LockFile:
    """A held run-folder lock (an open file with an ``flock``); ``close`` releases it."""

    def __init__(self, handle):
        global _fork_hook_registered
        self._handle = handle
        if not _fork_hook_registered:
            os.register_at_fork(after_in_child=_drop_inherited_locks)
            _fork_hook_registered = True
        _held.add(self)

    def close(self):
        _held.discard(self)
        self._handle.close()


_held = set()  # LockFile objects this process holds
_fork_hook_registered = False


def _drop_inherited_locks():
    """In a child forked from a run: close the inherited lock files, so the lock ends with the run."""
    for held in list(_held):
        held.close()


def lock(folder):
    """Lock ``folder`` for this process and return the ``LockFile`` (the lock lasts until it is closed);
    InputError naming the holder's process id when another process (or another claim in this one) holds it."""
    path = os.path.join(folder, LOCK_FILE)
    try:
        handle = open(path, "a+", encoding="ascii")
    except OSError as e:
        raise _not_writable(folder, e) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise InputError(folder, f"in use by another run (process {holder}); wait for it to finish or choose "
                                 "another --run-name") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return LockFile(handle)


def claim(parent, name, default, overwrite=False, resume=False):
    """Create (or reuse) and lock the run folder ``parent/name``.

    ``default`` marks a name the user did not choose: unless ``overwrite`` or ``resume``, it gets the first
    free suffix. A chosen name (or any name with ``overwrite``) is reused, but a folder holding files of an
    earlier run is refused without ``overwrite``. ``resume`` takes the existing folder ``parent/name`` as it is.
    """
    path = os.path.join(parent, name)
    if resume:
        if not os.path.isdir(path):
            raise InputError(path, "no run to resume: this run folder does not exist (give the interrupted run's "
                                   "--output and --run-name)")
        return RunDir(path, lock(path))
    if default and not overwrite:
        return _claim_fresh(parent, name)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise _not_writable(path, e) from None
    handle = lock(path)
    earlier = sorted(n for n in os.listdir(path) if n != LOCK_FILE)
    if earlier and not overwrite:
        handle.close()
        shown = ", ".join(earlier[:3]) + (", ..." if len(earlier) > 3 else "")
        raise InputError(path, f"holds an earlier run ({shown}); pass --overwrite to write into it (files of the "
                               "same name are replaced) or choose another --run-name")
    return RunDir(path, handle)


def _claim_fresh(parent, name):
    """``parent/name``, or ``parent/name_2``, ``_3``, ...: the first that did not exist, made here."""
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise _not_writable(os.path.join(parent, name), e) from None
    for n in range(1, MAX_SUFFIX + 1):
        path = os.path.join(parent, name if n == 1 else f"{name}_{n}")
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        except OSError as e:
            raise _not_writable(path, e) from None
        return RunDir(path, lock(path))
    raise InputError(os.path.join(parent, name), f"{MAX_SUFFIX} run folders of this name exist; choose "
                                                 "--run-name or another --output")


def _within(path, folder):
    """True when ``path`` is ``folder`` or lies inside it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_apart(run_dir, inputs):
    """InputError when the run folder ``run_dir`` is, lies inside, or contains one of ``inputs`` (input and
    GT paths: frame folders, dataset folders, video files), compared after resolving links."""
    out = os.path.realpath(run_dir)
    for path in inputs:
        real = os.path.realpath(path)
        if _within(out, real) or _within(real, out):
            where = "is" if out == real else "lies inside" if _within(out, real) else "contains"
            raise InputError(run_dir, f"the output folder {where} the input {path}: outputs would overwrite or "
                                      "mix with the input frames; choose another --output or --run-name")
