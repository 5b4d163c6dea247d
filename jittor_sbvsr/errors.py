"""The error every command reports as one line ``<path>: <problem>`` with exit status 2.

It lives apart from the modules that raise it (``video_io``, ``ffmpeg``, ``run_folder``, ...) so that each can
use it without importing another.
"""
import os


class InputError(Exception):
    """A file or folder cannot be used; ``str(err)`` is one line ``<path>: <problem>``."""

    def __init__(self, path, problem):
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"{self.path}: {problem}")
