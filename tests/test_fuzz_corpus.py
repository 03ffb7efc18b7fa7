"""The fuzz harness (tests/fuzz) stays runnable: every seed of every target's
corpus goes through the target's ``test_one_input`` (without libFuzzer or
atheris), the seed corpus matches make_corpus.py, and the pure Python input
decoder matches atheris' FuzzedDataProvider.

Running the fuzzers themselves is .ci/fuzz.sh (see tests/fuzz/README.md)."""

from __future__ import annotations

import importlib
import os
import random
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent / "fuzz"
TARGETS = ["blob", "npy", "array", "imagefile"]


@pytest.fixture(scope="module")
def fuzzlib(shared_dir):
    """The harness helper module, with $SSDFACE_SHARED pointing at the shared folder."""
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSDFACE_SHARED", str(shared_dir))
        yield importlib.import_module("_fuzzlib")


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_replays(fuzzlib, target):
    module = importlib.import_module(f"fuzz_{target}")
    seeds = sorted((fuzzlib.CORPUS_DIR / target).iterdir())
    assert len(seeds) >= 3, f"seed corpus of {target} is missing"
    fuzzlib.STATS.clear()
    findings = []
    for seed in seeds:
        try:
            module.test_one_input(seed.read_bytes())
        except Exception as exc:  # a Finding, or anything the target let through
            findings.append(f"{seed.name}: {type(exc).__name__}: {exc}")
    assert not findings, "\n".join(findings)
    # Each target's seeds reach both sides: something accepted, something refused.
    outcomes = list(fuzzlib.STATS)
    assert any(o.startswith("accepted:") for o in outcomes), outcomes
    assert any(not o.startswith(("accepted:", "known:")) for o in outcomes), outcomes


def test_seed_corpus_is_up_to_date(fuzzlib):
    make_corpus = importlib.import_module("make_corpus")
    assert make_corpus.main(["--check"]) == 0, "run python tests/fuzz/make_corpus.py"


def _calls(rng: random.Random, provider, n: int) -> list:
    out = []
    for _ in range(n):
        kind = rng.randrange(4)
        if kind == 0:
            lo = rng.choice([0, -5, 3, -(1 << 40)])
            hi = lo + rng.choice([0, 1, 255, 256, 70000, (1 << 32) - 1, (1 << 64) - 1])
            out.append(provider.ConsumeIntInRange(lo, hi))
        elif kind == 1:
            out.append(provider.ConsumeBytes(rng.randrange(6)))
        elif kind == 2:
            out.append(provider.ConsumeBool())
        else:
            out.append(provider.PickValueInList(["a", "b", "c"]))
        out.append(provider.remaining_bytes())
    return out


def test_provider_matches_atheris(fuzzlib):
    """Same bytes, same calls: same values from Provider as from atheris'
    FuzzedDataProvider (when atheris is installed; in any case the seed
    writer's input reads back as written)."""
    try:
        import atheris
    except ImportError:
        atheris = None
    for seed in range(300):
        rng = random.Random(seed)
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        ours = _calls(random.Random(seed), fuzzlib.Provider(data), 12)
        if atheris is not None:
            theirs = _calls(random.Random(seed), atheris.FuzzedDataProvider(data), 12)
            assert ours == theirs, data.hex()
    w = fuzzlib.SeedWriter()
    w.int(0, 3, 2).bytes(b"xyz").int(-256, 256, -7).bool(True).int(0, (1 << 64) - 1, 1 << 63)
    w.pick(["a", "b", "c"], "c").int(5, 5, 5)
    p = fuzzlib.Provider(w.getvalue())
    got = [p.ConsumeIntInRange(0, 3), p.ConsumeBytes(3), p.ConsumeIntInRange(-256, 256),
           p.ConsumeBool(), p.ConsumeIntInRange(0, (1 << 64) - 1), p.PickValueInList("abc"),
           p.ConsumeIntInRange(5, 5), p.remaining_bytes()]
    assert got == [2, b"xyz", -7, True, 1 << 63, "c", 5, 0]


def test_harness_imports_without_atheris(fuzzlib, monkeypatch):
    """The targets import atheris only in main(): importable without it."""
    monkeypatch.setitem(sys.modules, "atheris", None)  # import atheris -> ImportError
    for target in TARGETS:
        module = importlib.reload(importlib.import_module(f"fuzz_{target}"))
        assert callable(module.test_one_input) and callable(module.main)
    assert isinstance(fuzzlib.make_provider(b"\x01"), fuzzlib.Provider)
    assert os.environ["SSDFACE_SHARED"]
