"""Turning tasks into records: in this process, or shared out to worker processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

from ..detector import Detector
from ..face import Face
from ..image import load_image
from .inputs import Task


def _read_error(path: str, exc: BaseException) -> str:
    message = str(exc)
    if message.startswith("cannot read image"):
        return message
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read image {path}: {exc.strerror}"
    if not isinstance(exc, (OSError, ValueError, TypeError)):  # a decoder's own error
        message = f"{type(exc).__name__}: {message}"
    return f"cannot read image {path}: {message}"


def _save(img: Any, out: str, inputs: frozenset[str]) -> None:
    if os.path.realpath(out) in inputs:
        raise OSError(f"refusing to overwrite the input {out}")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    img.save(out, quality=95)


def _draw(img: Any, faces: list[Face]) -> Any:
    from PIL import ImageDraw

    img = img.copy()
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    for face in faces:
        draw.rectangle(face.box, outline=(0, 255, 0), width=width)
        draw.text((face.box[0] + width, face.box[1] + width), f"{face.score:.2f}",
                  fill=(0, 255, 0))
    return img


class Job:
    """What one process needs to turn tasks into records."""

    def __init__(self, detector: Detector, margin: float, inputs: frozenset[str]) -> None:
        self.detector = detector
        self.margin = margin
        self.inputs = inputs

    def read(self, task: Task) -> tuple[Task, Any, str | None]:
        """Decode the image (at the reduced scale the detector's views need)."""
        path, error = task[0], task[1]
        if error is not None:
            return task, None, error
        try:
            return task, self.detector.decode(path), None
        except ImportError:  # no Pillow: nothing can be read
            raise
        except Exception as exc:  # noqa: BLE001 - one odd file must not stop a run
            return task, None, _read_error(path, exc)

    def finish(self, task: Task, decoded: Any, error: str | None) -> dict[str, Any]:
        """Detect, write --draw and --crop files, and make the record."""
        path, _, draw_out, crop_stem, crop_ext = task
        if error is not None:
            return {"image": path, "error": error}
        faces = self.detector.detect(decoded)
        width, height = decoded.size
        record: dict[str, Any] = {
            "image": path, "width": width, "height": height,
            "faces": [{"box": [round(v, 2) for v in f.box], "score": round(f.score, 5)}
                      for f in faces],
        }
        if draw_out or (crop_stem and faces):
            try:
                self._write(path, faces, draw_out, crop_stem, crop_ext)
            except (OSError, ValueError, TypeError) as exc:
                record["error"] = f"cannot write the outputs of {path}: {exc}"
        return record

    def _write(self, path: str, faces: list[Face], draw_out: str | None,
               crop_stem: str | None, crop_ext: str | None) -> None:
        from PIL import Image

        img = Image.fromarray(load_image(path)).convert("RGB")  # full size, oriented
        if draw_out:
            _save(_draw(img, faces), draw_out, self.inputs)
        if crop_stem:
            for i, face in enumerate(faces):
                _save(face.crop(img, self.margin), f"{crop_stem}_face{i}{crop_ext}",
                      self.inputs)

    def __call__(self, task: Task) -> dict[str, Any]:
        """Read, detect and write: the record of one task."""
        return self.finish(*self.read(task))


_worker_job: Job | None = None
_worker_error: BaseException | None = None


def _init_worker(pickled_detector: bytes, margin: float, inputs: frozenset[str]) -> None:
    """Pool initializer: each worker rebuilds the parent's detector. It never
    raises (a failing initializer makes a Pool start workers forever); the
    error is raised by the first task instead."""
    global _worker_job, _worker_error
    # Ctrl-C in a terminal reaches every process of the group: the parent
    # stops the workers, they must not print tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import pickle

        _worker_job = Job(pickle.loads(pickled_detector), margin, inputs)
    except BaseException as exc:  # noqa: B036 - reported by _work
        _worker_error = exc


def _work(tasks: list[Task]) -> list[dict[str, Any]]:
    if _worker_job is None:
        raise RuntimeError(f"a worker could not build its detector: {_worker_error}")
    return [_worker_job(task) for task in tasks]


def _mp_context() -> Any:
    """forkserver where there is one (POSIX), else spawn (Windows): never a
    plain fork of this process, which may have threads (a progress bar's
    monitor, a detector's pool, a caller's) whose locks the child would
    inherit held."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # The server imports these once; each worker is a fork of it.
        ctx.set_forkserver_preload([__name__, "PIL.Image", "PIL.JpegImagePlugin"])
        return ctx
    return multiprocessing.get_context("spawn")


def _chunksize(count: int, jobs: int) -> int:
    # Small chunks: an image is ~10-50 ms of work, a chunk's transfer well
    # under a millisecond; small chunks keep the processes evenly loaded to
    # the end and the records streaming.
    return max(1, min(4, count // (jobs * 8)))


def run_parallel(detector: Detector, job: Job, tasks: list[Task], jobs: int
                  ) -> Iterator[dict[str, Any]]:
    """``jobs`` processes at work: ``jobs - 1`` workers, and this process.

    The workers start on a background thread (a new interpreter importing
    numpy and ssdface takes about as long as 20-30 images), while this
    process already works through the chunks. Once they run, each worker has
    two chunks queued and this process takes the next chunk itself; when
    everything is handed out, it redoes the last chunks still queued rather
    than wait (results are the same whoever computes them, the first one in
    is kept). Records come out in input order."""
    import pickle
    import queue
    import threading

    size = _chunksize(len(tasks), jobs)
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    workers = jobs - 1
    started: dict[str, Any] = {}

    def start_pool() -> None:
        # The server and workers start with SIGINT blocked (the mask of the
        # thread that starts them): a terminal's Ctrl-C reaches the whole
        # process group, this process stops them, they print no traceback.
        try:
            if hasattr(signal, "pthread_sigmask"):
                from multiprocessing import resource_tracker

                # Started first: starting it unblocks SIGINT in this thread.
                resource_tracker.ensure_running()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            started["pool"] = _mp_context().Pool(
                workers, initializer=_init_worker,
                initargs=(pickle.dumps(detector), job.margin, job.inputs))
        except BaseException as exc:  # noqa: B036 - raised by the main thread
            started["error"] = exc

    starter = threading.Thread(target=start_pool, name="ssdface-pool-start", daemon=True)
    starter.start()
    finished: queue.SimpleQueue[tuple[int, Any, Any]] = queue.SimpleQueue()
    done: dict[int, list[dict[str, Any]]] = {}
    queued: set[int] = set()  # chunks in the pool, not back yet
    given = emitted = 0  # chunks handed out (to the pool or here), written

    def collect(block: bool) -> None:
        while True:
            try:
                index, records, error = finished.get(block=block, timeout=0.05 if block
                                                     else None)
            except queue.Empty:
                return
            if error is not None:
                raise error
            queued.discard(index)
            done.setdefault(index, records)
            block = False

    try:
        while emitted < len(chunks):
            if "error" in started:
                # No worker processes here (no semaphores, a sandbox...):
                # this process does the rest.
                print(f"ssdface: warning: cannot start worker processes "
                      f"({started.pop('error')}); going on in one process", file=sys.stderr)
            pool = started.get("pool")
            collect(block=False)
            while pool is not None and given < len(chunks) and len(queued) < 2 * workers:
                pool.apply_async(_work, (chunks[given],),
                                 callback=lambda r, i=given: finished.put((i, r, None)),
                                 error_callback=lambda e, i=given: finished.put((i, None, e)))
                queued.add(given)
                given += 1
            while emitted in done:
                yield from done.pop(emitted)
                emitted += 1
            if emitted >= len(chunks):
                break
            if given < len(chunks):  # work left to hand out: a chunk here
                done[given] = [job(task) for task in chunks[given]]
                given += 1
                continue
            todo = [i for i in queued if i not in done]
            if len(todo) > 1:
                # The workers have more than one chunk to go: this process
                # takes the last one.
                steal = max(todo)
                done[steal] = [job(task) for task in chunks[steal]]
            else:
                collect(block=True)
    finally:
        starter.join()
        pool = started.get("pool")
        if pool is not None:
            pool.terminate()  # all records are in (or we stop): drop redone chunks
            pool.join()


def run_inline(job: Job, tasks: list[Task], prefetch: int = 2) -> Iterator[dict[str, Any]]:
    """In this process, the next images decoded on a background thread while
    the current one is detected (Pillow and the engine both release the GIL)."""
    executor = ThreadPoolExecutor(1, thread_name_prefix="ssdface-decode")
    try:
        todo = iter(tasks)
        pending: deque[Any] = deque(executor.submit(job.read, task)
                                    for task in islice(todo, prefetch))
        while pending:
            read = pending.popleft().result()
            task = next(todo, None)
            if task is not None:
                pending.append(executor.submit(job.read, task))
            yield job.finish(*read)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
