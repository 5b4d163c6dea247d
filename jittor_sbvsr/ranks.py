"""One ``infer`` run shared by the processes of ``mpirun -np N``: who restores what, and how they meet.

``plan`` splits the work: several videos go whole to the processes (ranks), longest first to the least
loaded; a single video is cut into N contiguous ranges of centre frames, each rank reading the 2 frames of
context on either side of its range, so that every output frame is computed from the same window as in one
process and the outputs are identical. On a GPU machine Jittor gives each rank the GPU of its local rank.

``Group`` is the process group: rank and size from the variables the MPI launcher sets (the ones Jittor
itself reads, so nothing is imported to learn them), a text broadcast from rank 0 (the run folder it
claimed) and a barrier, both through Jittor's MPI operators.
"""
import os
from dataclasses import dataclass

MAX_TEXT = 4096  # bytes of a broadcast text (a run folder path)


@dataclass(frozen=True)
class Share:
    """Centre frames ``start <= centre < stop`` (``stop`` None: to the end) of video number ``video``."""
    video: int
    start: int = 0
    stop: int = None


def plan(counts, size, border):
    """Per rank, the list of Shares it restores. ``counts``: frames per video (an estimate for video files,
    None when unknown). A video of unknown length is not cut: it goes whole to rank 0."""
    shares = [[] for _ in range(size)]
    if size == 1 or len(counts) > 1:
        load = [0] * size
        for v in sorted(range(len(counts)), key=lambda v: -(counts[v] or 0)):
            rank = min(range(size), key=load.__getitem__)
            shares[rank].append(Share(v))
            load[rank] += counts[v] or 1
        return [sorted(s, key=lambda share: share.video) for s in shares]
    if not counts or counts[0] is None:
        shares[0] = [Share(v) for v in range(len(counts))]
        return shares
    first, end = (0, counts[0]) if border else (2, counts[0] - 2)
    span = max(end - first, 0)
    bounds = [first + span * r // size for r in range(size + 1)]
    for rank in range(size):
        last = rank == size - 1  # takes everything after its start, should the estimate be short
        if last or bounds[rank] < bounds[rank + 1]:
            shares[rank] = [Share(0, bounds[rank], None if last else bounds[rank + 1])]
    return shares


def launcher_rank_size():
    """(rank, size) from the MPI launcher's environment: (0, 1) outside mpirun."""
    size = os.environ.get("OMPI_COMM_WORLD_SIZE")
    if size is None:
        return 0, 1
    return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0")), int(size)


class Group:
    """The processes of one run; with one process every operation is local."""

    def __init__(self):
        self.rank, self.size = launcher_rank_size()

    @property
    def leader(self):
        return self.rank == 0

    def broadcast_text(self, text):
        """Rank 0's ``text`` on every rank (others pass anything)."""
        if self.size == 1:
            return text
        import numpy as np

        from .runtime import jittor

        jt = jittor()
        data = np.zeros(MAX_TEXT, np.int32)
        encoded = text.encode("utf-8")[:MAX_TEXT] if self.leader else b""
        data[:len(encoded)] = np.frombuffer(encoded, np.uint8)
        received = jt.array(data).mpi_broadcast(0).numpy().astype(np.uint8)
        return bytes(received).rstrip(b"\0").decode("utf-8")

    def barrier(self):
        """Return once every rank has got here."""
        if self.size == 1:
            return
        from .runtime import jittor

        jittor().array([1]).mpi_all_reduce("add").sync()
