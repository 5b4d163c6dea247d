"""The two dataset layouts of upstream training (upstream-conventions §4): frame lists per video and 5-frame
windows."""
import os

from ..video_io import InputError, check_frame_files, list_frames


def video_frames(root, sub, limit=None):
    """[(video name, [frame paths])] of ``root/sub/<video>/<frames>``, videos and frames sorted by name,
    at most ``limit`` frames per video; InputError when the folder is missing or holds no video."""
    folder = os.path.join(root, sub)
    if not os.path.isdir(folder):
        raise InputError(folder, f"dataset folder not found (expected {root}/{sub}/<video>/<frames>)")
    videos = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isdir(path):
            frames = list_frames(path)
            if not frames:
                raise InputError(path, "no frames (png/jpg/bmp) in this video folder")
            videos.append((name, frames[:limit] if limit else frames))
    if not videos:
        raise InputError(folder, "no video sub-folders")
    return videos


def frame_sizes(videos):
    """{video name: (height, width)} of ``videos`` ([(name, frame paths)]), read from the headers of all their
    frames before any is decoded: InputError for a file that is not a readable image or whose size differs
    from its video's first frame (otherwise met only when a sample needs it, in a data worker mid-epoch)."""
    return {name: check_frame_files(frames) for name, frames in videos}


def windows(videos, n_sequence):
    """[(video index, first frame)] of every run of ``n_sequence`` consecutive frames (no border padding);
    InputError for a video shorter than one window."""
    out = []
    for v, (name, frames) in enumerate(videos):
        if len(frames) < n_sequence:
            raise InputError(os.path.dirname(frames[0]), f"video {name} has {len(frames)} frames, fewer than "
                                                          f"the {n_sequence} of one input window")
        out += [(v, start) for start in range(len(frames) - n_sequence + 1)]
    return out
