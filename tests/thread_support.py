"""Native threads of the test process, for the tests that check that a
detector starts and stops exactly its own: by thread id, not by count, as a
thread an earlier test left (a pool, a subprocess reader) may still be
exiting, or starting, while they run."""

from __future__ import annotations

import os
import time


def native_threads() -> set[int]:
    """The ids of this process's native threads."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def settled_threads(timeout: float = 5.0) -> set[int]:
    """This process's threads once they have stayed the same for 0.2 s (or
    after ``timeout`` seconds): threads that earlier tests stopped are gone."""
    deadline = time.monotonic() + timeout
    last, since = native_threads(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 0.2:
        time.sleep(0.02)
        now = native_threads()
        if now != last:
            last, since = now, time.monotonic()
    return last


def wait_gone(tids: set[int], timeout: float = 5.0) -> set[int]:
    """Those of ``tids`` still running after at most ``timeout`` seconds.
    pthread_join returns as a thread exits; the kernel drops it from /proc a
    moment later."""
    deadline = time.monotonic() + timeout
    while tids & native_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return tids & native_threads()
