"""What the fuzz targets share: paths, the input decoder, the finding policy.
(What they share about ssdface itself is in ``_common.py``.)

Every target is a script ``fuzz_<name>.py`` with a ``test_one_input(data)``
function (what libFuzzer calls; the pytest suite replays the seed corpus
through it) and ``main()``, which starts atheris. atheris is imported only in
:func:`run`, so the targets import and run without it.

Input decoding uses ``atheris.FuzzedDataProvider`` when atheris is importable
and :class:`Provider`, a pure Python copy of the part of its behaviour the
targets use, otherwise: integers are read from the end of the input, bytes
and booleans from the front. :class:`SeedWriter` is the inverse; the seed
corpus is written with it (``make_corpus.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

FUZZ_DIR = Path(__file__).resolve().parent
REPO_ROOT = FUZZ_DIR.parents[1]
CORPUS_DIR = FUZZ_DIR / "corpus"


def _prefer_repo_checkout() -> None:
    """Import ``ssdface`` from this checkout when it has a built extension
    (``python setup.py build_ext --inplace``), as ``python -m pytest`` run from
    the repository root does; otherwise the installed package is used."""
    if any((REPO_ROOT / "ssdface").glob("_core*.so")) or any(
        (REPO_ROOT / "ssdface").glob("_core*.pyd")
    ):
        root = str(REPO_ROOT)
        if root not in sys.path:
            sys.path.insert(0, root)


_prefer_repo_checkout()


# --- known issues and findings ------------------------------------------------

# Problems known and being fixed elsewhere. A target that meets one of these
# counts it (see the stats line) and goes on, instead of reporting a finding.
# Remove a name once its fix has landed, or run with SSDFACE_FUZZ_STRICT=1, to
# make it a finding again.
KNOWN_ISSUES: dict[str, str] = {}

# Issues this harness tolerated until their fixes landed: meeting one again is
# a finding (a regression).
FIXED_ISSUES = {
    "blob-overlapping-tensors": "a blob with a valid checksum whose table points two tensors "
    "at overlapping bytes is accepted",
    "blob-nonfinite-weights": "a blob with a valid checksum holding NaN or infinite weights is "
    "accepted (and then detect returns NaN boxes)",
    "nonfinite-output": "finite but huge weights or inputs overflow to inf/NaN in the network "
    "and detect returns NaN boxes",
    "pillow-errors-escape": "an image file Pillow fails to decode can raise an exception that "
    "is not an OSError (SyntaxError, EOFError, struct.error...) out of ssdface's image loading",
}


def strict() -> bool:
    return os.environ.get("SSDFACE_FUZZ_STRICT", "").lower() in ("1", "true", "yes")


class Finding(AssertionError):
    """The library did something a target's contract forbids."""


STATS: Counter[str] = Counter()


def count(event: str) -> None:
    """Record an outcome: for the stats line and as coverage (:func:`feedback`)."""
    STATS[event] += 1
    feedback(event)


_ATHERIS: Any = None  # the atheris module while fuzzing
_FEEDBACK: dict[str, Callable[[], None]] = {}
MAX_FEEDBACK = 4096


def feedback(label: str) -> None:
    """Make an outcome visible to libFuzzer.

    Most checks run in C and only their error message tells them apart; the
    Python coverage atheris measures would see one "raised BlobError" path
    for all of them. Under atheris each distinct label runs its own freshly
    instrumented function, so that an input reaching a new outcome counts as
    new coverage and is kept in the corpus."""
    if _ATHERIS is None:
        return
    fn = _FEEDBACK.get(label)
    if fn is None:
        if len(_FEEDBACK) >= MAX_FEEDBACK:
            return
        namespace: dict[str, Any] = {}
        exec(compile("def outcome():\n    return None\n", f"<outcome {label}>", "exec"),
             namespace)
        fn = _FEEDBACK[label] = _ATHERIS.instrument_func(namespace["outcome"])
    fn()


def known_issue(name: str, detail: str, kind: str = "") -> None:
    """Tolerate (and count, as ``known:NAME KIND``) a known issue, or report
    it as a finding in strict mode."""
    if name in FIXED_ISSUES:
        raise Finding(f"[{name}, fixed: a regression] {FIXED_ISSUES[name]}: {detail}")
    if name not in KNOWN_ISSUES:
        raise KeyError(name)
    if strict():
        raise Finding(f"[{name}] {KNOWN_ISSUES[name]}: {detail}")
    count(f"known:{name} {kind}".rstrip())


def outcome(exc: BaseException) -> str:
    """A short label of an exception for the stats: type and message start."""
    text = re.sub(r"^\S*/\S*: ", "", str(exc))  # a leading "path: "
    words = ["X" if "_" in w or "/" in w else re.sub(r"\d+", "N", w)[:16]
             for w in text.split()[:4]]
    return f"{type(exc).__name__}: {' '.join(words)}"


def check_exception(exc: BaseException, allowed: tuple[type, ...], what: str) -> None:
    """Re-raise ``exc`` as a :class:`Finding` unless it is an allowed type."""
    if isinstance(exc, Finding):
        raise exc
    if not isinstance(exc, allowed):
        names = ", ".join(t.__name__ for t in allowed)
        raise Finding(
            f"{what} raised {type(exc).__module__}.{type(exc).__name__} ({exc!r}); "
            f"allowed: {names}"
        ) from exc
    count(outcome(exc))


# --- paths ---------------------------------------------------------------------


def shared_dir() -> Path:
    """``$SSDFACE_SHARED`` or ``<repo>/../shared``."""
    env = os.environ.get("SSDFACE_SHARED")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path.resolve()


def weights_dir() -> Path:
    path = shared_dir() / "weights" / "ssd_mobilenetv2_face_nhwc"
    if not path.is_dir():
        raise SystemExit(
            f"fuzz: weights folder not found at {path} (set SSDFACE_SHARED to the shared folder)"
        )
    return path


_WORKDIR: Path | None = None


def workdir() -> Path:
    """A private scratch folder for this process (``$TMPDIR``), removed at exit
    when the process exits through Python."""
    global _WORKDIR
    if _WORKDIR is None:
        import atexit

        _WORKDIR = Path(tempfile.mkdtemp(prefix="ssdface-fuzz-"))
        atexit.register(shutil.rmtree, _WORKDIR, True)
    return _WORKDIR


# --- input decoding --------------------------------------------------------------


def _int_width(span: int) -> int:
    """Bytes FuzzedDataProvider reads for an integer range of ``span`` (hi - lo)."""
    n = 0
    while n < 8 and (span >> (8 * n)) > 0:
        n += 1
    return n


class Provider:
    """Pure Python stand-in for the ``atheris.FuzzedDataProvider`` methods the
    targets use, with the same results for the same bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._front = 0
        self._back = len(self._data)

    def remaining_bytes(self) -> int:
        return self._back - self._front

    def ConsumeBytes(self, count: int) -> bytes:  # noqa: N802 - atheris' names
        count = max(0, min(int(count), self.remaining_bytes()))
        out = self._data[self._front:self._front + count]
        self._front += count
        return out

    def ConsumeBool(self) -> bool:  # noqa: N802
        if self.remaining_bytes() == 0:
            return False
        value = self._data[self._front] & 1
        self._front += 1
        return bool(value)

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:  # noqa: N802
        if lo > hi:
            raise ValueError("lo > hi")
        span = hi - lo
        result = 0
        for _ in range(_int_width(span)):
            if self.remaining_bytes() == 0:
                break
            self._back -= 1
            result = (result << 8) | self._data[self._back]
        if span < (1 << 64) - 1:
            result %= span + 1
        return lo + result

    def PickValueInList(self, values: Sequence[Any]) -> Any:  # noqa: N802
        return values[self.ConsumeIntInRange(0, len(values) - 1)]


def make_provider(data: bytes) -> Any:
    """atheris' FuzzedDataProvider when atheris is installed, else :class:`Provider`."""
    try:
        import atheris
    except ImportError:
        return Provider(data)
    return atheris.FuzzedDataProvider(data)


class SeedWriter:
    """Builds the input that makes a target's decoder read given values.

    Answer the decoder's calls in the order it makes them: ``int(lo, hi, v)``
    for ``ConsumeIntInRange(lo, hi)``, ``pick(values, v)``, ``bool(v)``,
    ``bytes(b)`` for ``ConsumeBytes(len(b))`` (or a final
    ``ConsumeBytes(remaining_bytes())``). Calls left unanswered read the
    defaults (lo, False, b"") of an exhausted input.
    """

    def __init__(self) -> None:
        self._front = bytearray()
        self._back = bytearray()  # in reading order; reversed at the end

    def int(self, lo: int, hi: int, value: int) -> SeedWriter:
        if not lo <= value <= hi:
            raise ValueError(f"{value} not in [{lo}, {hi}]")
        width = _int_width(hi - lo)
        self._back += (value - lo).to_bytes(width, "big") if width else b""
        return self

    def pick(self, values: Sequence[Any], value: Any) -> SeedWriter:
        return self.int(0, len(values) - 1, list(values).index(value))

    def bool(self, value: bool) -> SeedWriter:
        self._front.append(1 if value else 0)
        return self

    def bytes(self, data: bytes) -> SeedWriter:
        self._front += data
        return self

    def getvalue(self) -> bytes:
        return bytes(self._front) + bytes(reversed(self._back))


# --- running --------------------------------------------------------------------


def _stats_reporter(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wrap ``fn`` to print the outcome counts to stderr every 30 seconds
    (libFuzzer ends the process without running Python's atexit handlers)."""
    last = [time.monotonic()]

    def wrapped(data: bytes) -> None:
        try:
            fn(data)
        finally:
            now = time.monotonic()
            if now - last[0] >= 30:
                last[0] = now
                print_stats()

    return wrapped


def print_stats() -> None:
    top = ", ".join(f"{k} x{v}" for k, v in STATS.most_common(30))
    print(f"#stats {sum(STATS.values())} outcomes: {top}", file=sys.stderr, flush=True)


def _instrument_module(atheris: Any, module: Any) -> None:
    """Instrument the functions and methods defined in ``module``."""
    for value in list(vars(module).values()):
        members = vars(value).values() if isinstance(value, type) else [value]
        for fn in members:
            if callable(fn) and getattr(fn, "__module__", None) == module.__name__ and \
                    hasattr(fn, "__code__"):
                atheris.instrument_func(fn)


def _harness_modules() -> list[Any]:
    """The loaded modules whose file is in this folder."""
    out = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and Path(path).resolve().parent == FUZZ_DIR:
            out.append(module)
    return out


def run(
    test_one_input: Callable[[bytes], None],
    setup: Callable[[], None],
    instrument: Sequence[str] = ("ssdface",),
    argv: list[str] | None = None,
    also: Callable[[Any], None] | None = None,
) -> None:
    """Start libFuzzer on ``test_one_input`` with the imports done by ``setup``
    instrumented for coverage (only the packages in ``instrument``; ``also``
    gets the atheris module to instrument more, e.g. single functions)."""
    global _ATHERIS
    import atheris

    argv = list(sys.argv if argv is None else argv)
    with atheris.instrument_imports(include=list(instrument)):
        setup()
    if also is not None:
        also(atheris)
    # The harness' own branches (which mutation, which dtype...) count too:
    # every module of this folder that is loaded (this one, _common.py, the
    # target and its input decoder).
    for module in _harness_modules():
        _instrument_module(atheris, module)
    _ATHERIS = atheris
    import ssdface

    print(f"fuzz: ssdface from {Path(ssdface.__file__).parent}, isa {ssdface.default_isa()}",
          file=sys.stderr, flush=True)
    atheris.Setup(argv, _stats_reporter(test_one_input))
    atheris.Fuzz()
