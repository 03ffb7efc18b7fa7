"""pytest plugin for .ci/sanitize.sh (loaded with ``-p sanitize_check``).

Before any test runs it checks that the session imports the sanitized build:
``ssdface`` and its extension modules (``_core``, ``_testing``) must come
from ``$SSDFACE_SANITIZED_TREE``, the sanitizer runtime must be loaded in this
process, and the default kernel variant must be ``$SSDFACE_ISA``. Any
mismatch stops the run (exit code 4).

It also deselects the tests marked ``no_asan(reason=...)`` (tests that cannot
work in an ASan process at all; the marker is registered in pyproject.toml)
and names each one with its reason, so that nothing is left out silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_CORE = pytest.StashKey[str]()


def _loaded_libraries() -> str:
    with open("/proc/self/maps") as f:
        return f.read()


def pytest_configure(config: pytest.Config) -> None:
    tree = os.environ.get("SSDFACE_SANITIZED_TREE")
    if not tree:
        raise pytest.UsageError("sanitize_check: $SSDFACE_SANITIZED_TREE is not set")
    tree_path = Path(tree).resolve()

    import ssdface._core  # binds ssdface too
    import ssdface._testing

    for module in (ssdface, ssdface._core, ssdface._testing):
        path = Path(module.__file__).resolve()
        if tree_path not in path.parents:
            raise pytest.UsageError(
                f"sanitize_check: {module.__name__} imported from {path}, "
                f"not from the sanitized build in {tree_path}")
    if "libasan" not in _loaded_libraries():
        raise pytest.UsageError("sanitize_check: the ASan runtime is not loaded (LD_PRELOAD?)")
    want = os.environ.get("SSDFACE_ISA", "")
    if ssdface.default_isa() != want:
        raise pytest.UsageError(
            f"sanitize_check: default kernel variant is {ssdface.default_isa()!r}, "
            f"expected $SSDFACE_ISA={want!r}")
    config.stash[_CORE] = str(Path(ssdface._core.__file__).resolve())


def pytest_sessionstart(session: pytest.Session) -> None:
    # A plain line, not a report header: those are hidden under -q.
    line = (f"sanitized build: {session.config.stash[_CORE]} "
            f"(SSDFACE_ISA={os.environ.get('SSDFACE_ISA')})")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(line)
    else:
        print(line)


def _other_variant(item: pytest.Item, isa: str, variants: set[str]) -> bool:
    """With several variant runs ($SSDFACE_SANITIZE_SPLIT=1): whether the
    test is parametrized on a kernel variant (``isa`` or ``impl``) other
    than this run's. Each variant's own run sanitizes its kernels. With
    one run, every parametrized variant runs in it. ``reference`` runs only
    where $SSDFACE_SANITIZE_REFERENCE is 1 (by default the first run): its
    plain loops are slow under ASan."""
    params = getattr(item, "callspec", None)
    if params is None:
        return False
    split = os.environ.get("SSDFACE_SANITIZE_SPLIT") == "1"
    for name in ("isa", "impl"):
        value = params.params.get(name)
        if not isinstance(value, str) or value not in variants or value == isa:
            continue
        if value == "reference":
            if os.environ.get("SSDFACE_SANITIZE_REFERENCE") != "1":
                return True
        elif split:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import ssdface

    isa = os.environ.get("SSDFACE_ISA", "")
    variants = set(ssdface.available_isas())
    others = [item for item in items if _other_variant(item, isa, variants)]
    if others:
        config.hook.pytest_deselected(items=others)
        skip = set(map(id, others))
        items[:] = [item for item in items if id(item) not in skip]
        line = (f"sanitize_check: deselected {len(others)} tests of other kernel variants "
                f"(their own runs cover them)")
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(line)
        else:
            print(line)
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("no_asan")
        if marker is None:
            kept.append(item)
            continue
        reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: no_asan needs a reason")
        dropped.append((item, reason))
    if dropped:
        config.hook.pytest_deselected(items=[item for item, _ in dropped])
        items[:] = kept
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for item, reason in dropped:
            line = f"sanitize_check: deselected (no_asan) {item.nodeid}: {reason}"
            if reporter:
                reporter.write_line(line, yellow=True)
            else:
                print(line)
