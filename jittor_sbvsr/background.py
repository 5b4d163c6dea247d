"""One worker thread that runs output jobs (PNG writing, video encoding) in order while the caller computes.

PNG compression and ffmpeg pipe writes release the GIL, so they overlap the next frame's network work. The
queue is bounded (``depth`` jobs), so a slow disk or encoder slows the producer down instead of letting
finished frames pile up in memory. ``threaded=False`` runs each job at once in the caller (to measure
the gain, and as the plain fallback).
"""
import queue
import threading


class Background:
    """Runs submitted callables in submission order; a job's error is raised by the next ``submit``, by
    ``drain`` or by ``close``, and later jobs are dropped."""

    def __init__(self, threaded=True, depth=4):
        self._error = None
        self._queue = queue.Queue(depth) if threaded else None
        self._thread = threading.Thread(target=self._work, name="sbvsr-output", daemon=True) if threaded else None
        if self._thread:
            self._thread.start()

    def _work(self):
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as e:  # handed to the producer, which raises it
                self._error = e
            finally:
                self._queue.task_done()

    def _raise(self):
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, job):
        self._raise()
        if self._queue is None:
            job()
        else:
            self._queue.put(job)

    def drain(self):
        """Wait until every submitted job has run; raise the first error."""
        if self._queue is not None:
            self._queue.join()
        self._raise()

    def close(self, raise_error=True):
        """Run what is queued and stop the thread; raise the first error unless ``raise_error`` is False (the
        caller is already failing with an error of its own)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if raise_error:
            self._raise()
