"""Jittor's data-loading worker processes, fitted to this package's error reporting and interrupt handling.

Jittor's workers are forked processes, and the main process waits for them inside C++ holding the GIL: while
it waits for a worker that has died it can neither run a signal handler nor notice the death. Hence:

* a worker never dies of a failed sample: the sample comes back as a ``SampleFailure``, which the main
  process raises (an ``InputError`` stays one line). Jittor's own worker would print a traceback, send SIGINT
  to the main process and exit, leaving the main process waiting for it;
* workers ignore SIGINT: a Ctrl-C in a terminal reaches the whole process group, and only the main process
  acts on it (it raises KeyboardInterrupt as soon as it is back in Python, which the running workers allow);
* on SIGTERM (Jittor's way of stopping workers, and part of a SIGTERM sent to the process group) a worker
  stops its ring buffers before it exits, which wakes a main process that waits for it;
* at exit the main process kills the workers that are left (``_kill_workers``): a worker blocked in C++ on
  a full buffer cannot act on SIGTERM, and multiprocessing would wait for it for ever.
"""
import atexit
import os
import signal
import traceback
import weakref

from ..runtime import jittor
from ..video_io import InputError

jt = jittor()

_DATASETS = weakref.WeakSet()  # datasets that have started workers


class SampleFailure:
    """A sample that could not be made: an unusable file (``path``, ``problem``) or an unexpected error
    (``path`` None, ``problem`` its traceback). Picklable, so it crosses the worker's ring buffer."""

    def __init__(self, path, problem):
        self.path, self.problem = path, problem

    def error(self):
        """The exception to raise in the main process."""
        if self.path is not None:
            return InputError(self.path, self.problem)
        return RuntimeError(f"a data worker failed:\n{self.problem}")


class WorkerSafeDataset(jt.dataset.Dataset):
    """A Jittor Dataset whose subclasses define ``load(index)`` (the sample) instead of ``__getitem__``."""

    def __getitem__(self, index):
        try:
            return self.load(index)
        except InputError as e:
            return SampleFailure(e.path, e.problem)
        except Exception:  # anything else, a bug included, must reach the main process too (module docstring)
            return SampleFailure(None, traceback.format_exc())

    def collate_batch(self, batch):
        failed = [b for b in batch if isinstance(b, SampleFailure)]
        return failed[0] if failed else super().collate_batch(batch)

    def __iter__(self):
        for batch in super().__iter__():
            if isinstance(batch, SampleFailure):
                raise batch.error()
            yield batch

    def _init_workers(self, index_list):
        super()._init_workers(index_list)
        _DATASETS.add(self)

    def _worker_main(self, worker_id, buffer, status):
        idqueue = self.idqueue

        def stop(signum, frame):
            buffer.stop()
            idqueue.stop()
            os._exit(0)

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, stop)
        super()._worker_main(worker_id, buffer, status)


@atexit.register
def _kill_workers():
    """Kill the workers of every dataset still alive (SIGKILL, then wait). SIGCHLD goes back to its default
    first: Jittor's handler ends the process when a child dies of a signal other than SIGTERM. Registered
    after multiprocessing's own exit handler, so it runs before that one waits for the workers."""
    processes = [w.p for ds in list(_DATASETS) for w in getattr(ds, "workers", []) if w.p.is_alive()]
    if processes:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for p in processes:
        p.kill()
    for p in processes:
        p.join()
