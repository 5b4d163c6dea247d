"""Ctrl-C and SIGTERM as Python exceptions, so that every command cleans up and exits with 130 or 143.

Loading Jittor's C++ library installs its own SIGINT handler, which prints ``Caught SIGINT, quick exit`` and
ends the process at once with status 1: no ``finally`` block runs, temporaries stay behind, summaries are not
written. ``restore_sigint`` (called by ``runtime.jittor()`` right after the import) puts Python's handler
back. ``sigterm_raises`` makes SIGTERM raise ``Terminated``, a ``KeyboardInterrupt``, so the clean-up written
for Ctrl-C serves both signals; ``exit_status`` gives the shell convention 128 + signal number.

Python runs signal handlers between bytecodes of the main thread: a signal that arrives during a long
Jittor computation takes effect when that computation returns.
"""
import contextlib
import signal
import threading


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (inside ``sigterm_raises``)."""


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def restore_sigint():
    """Re-install the SIGINT disposition Python has on record over the C++ handler Jittor installed: normally
    the handler raising KeyboardInterrupt, or SIG_IGN for a process started with SIGINT ignored (a background
    job of a non-interactive shell), which Jittor's handler would otherwise override."""
    current = signal.getsignal(signal.SIGINT)
    if _in_main_thread() and current is not None:
        signal.signal(signal.SIGINT, current)


def default_sigchld():
    """Put back the default SIGCHLD disposition over Jittor's handler, which ends the whole process (status 1,
    no clean-up) when any child dies of a signal. That handler is kept only where Jittor's data-loading
    workers run (train): a command without them (infer) has children (ffmpeg) that a Ctrl-C to the process
    group can kill while they start, before they leave the group, and must still clean up. Main thread only."""
    if _in_main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises():
    """Within this block SIGTERM raises ``Terminated`` in the main thread; the previous handler is restored
    afterwards (nothing changes when called from another thread, where Python cannot set handlers)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred():
    """Ctrl-C and SIGTERM that arrive inside this block take effect when it ends, so that the steps inside
    happen together or not at all (a frame is written *and* recorded). Main thread only."""
    received = []
    previous = {signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])


def exit_status(interrupt):
    """130 for Ctrl-C (SIGINT), 143 for ``Terminated`` (SIGTERM)."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)

