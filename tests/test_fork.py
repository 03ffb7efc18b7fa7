"""fork() never leaves a detector dead in the child: not while another thread
of the parent is inside a call, and not when the child cannot start threads.

Each scenario runs in a fresh interpreter (a hung child must not hang the
suite): the script forks, the parent waits for the child with a deadline."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PRELUDE = """
import os, sys, threading, time
import numpy as np
import ssdface

def wait_child(pid, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.02)
"""


def run_script(body: str, *args: str) -> str:
    code = PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc.stdout


def test_fork_while_another_thread_is_inside_detect(weights_dir, shared_dir):
    """The engine lock is held by a thread that does not exist in the child:
    before the fix the child deadlocked on it."""
    out = run_script("""
        weights, photo = sys.argv[1], sys.argv[2]
        det = ssdface.Detector(weights, num_threads=2)
        expected = [f.score for f in det.detect(photo)]
        batch = np.zeros((200, 300, 300, 3), np.float32)  # about a second of work
        inside = threading.Event()
        def busy():
            inside.set()
            det.forward(batch)
        thread = threading.Thread(target=busy)
        thread.start()
        inside.wait()
        time.sleep(0.1)  # well inside forward, holding the engine lock
        pid = os.fork()
        if pid == 0:
            try:
                ok = [f.score for f in det.detect(photo)] == expected
                os._exit(0 if ok else 3)
            except BaseException:
                os._exit(4)
        status = wait_child(pid)
        thread.join()
        print("child:", status)
        print("parent still works:", [f.score for f in det.detect(photo)] == expected)
    """, weights_dir, shared_dir / "images" / "group_selfie.jpg")
    assert "child: 0" in out, out
    assert "parent still works: True" in out


def test_failed_restart_in_child_is_an_error_then_recovers(weights_dir):
    """The child may start one thread but not two (RLIMIT_NPROC; as root the
    child first becomes `nobody`, since root is exempt from that limit): the
    call raises a clear RuntimeError instead of leaving a half-started pool
    that hangs on the next call (before the fix: the second call hung), and
    once threads can be made again the detector works."""
    out = run_script("""
        import resource
        det = ssdface.Detector(sys.argv[1], num_threads=3)
        x = np.random.default_rng(0).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
        expected = det.forward(x)
        pid = os.fork()
        if pid == 0:
            if os.geteuid() == 0:
                os.setuid(65534)
            uid = os.getuid()
            tasks = 0  # this user's threads now, this process included
            for entry in os.listdir("/proc"):
                try:
                    status = open(f"/proc/{entry}/status").read()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if entry.isdigit() and int(fields["Uid"].split()[0]) == uid:
                    tasks += int(fields["Threads"])
            soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
            resource.setrlimit(resource.RLIMIT_NPROC, (tasks + 1, hard))  # one more, not two
            for attempt in range(2):
                try:
                    det.forward(x)
                    os._exit(5)  # could not have run on 3 threads
                except RuntimeError as exc:
                    if "worker threads" not in str(exc):
                        os._exit(6)
            resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
            out = det.forward(x)
            same = all(np.array_equal(a, b) for a, b in zip(out, expected))
            os._exit(0 if same else 7)
        print("child:", wait_child(pid))
    """, weights_dir)
    assert "child: 0" in out, out


def test_forked_child_runs_every_int8_variant(weights_dir):
    """The int8 kernels in a forked child, after the parent ran them on its
    pool: AMX's tile permission (arch_prctl, asked once per process at
    detection) is inherited, so the child's threads run the tiles and give
    the parent's bytes, on every int8 variant this CPU runs."""
    out = run_script("""
        from ssdface import _core
        from ssdface.weights import pack_bytes
        blob = pack_bytes(sys.argv[1]).tobytes()
        x = np.random.default_rng(0).uniform(-1, 1, (1, 300, 300, 3)).astype(np.float32)
        isas = _core.kernel_sets(dtype="qu8")
        engines, expected = {}, {}
        for isa in isas:
            engines[isa] = _core.Engine(blob, 2, "qu8")
            engines[isa].kernels = isa
            expected[isa] = [a.tobytes() for a in engines[isa].forward(x)]
        pid = os.fork()
        if pid == 0:
            try:
                bad = 0
                for isa in isas:
                    fresh = _core.Engine(blob, 2, "qu8")
                    fresh.kernels = isa
                    for e in (engines[isa], fresh):
                        bad += [a.tobytes() for a in e.forward(x)] != expected[isa]
                os._exit(3 if bad else 0)
            except BaseException:
                os._exit(4)
        print("variants:", " ".join(isas))
        print("child:", wait_child(pid))
    """, weights_dir)
    assert "child: 0" in out, out
