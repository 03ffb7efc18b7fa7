#!/usr/bin/env bash
# CI: the whole test suite against a build of the C engine under
# AddressSanitizer + UndefinedBehaviorSanitizer, once per kernel variant this
# CPU runs (all of available_isas() but `reference`, which the suite covers
# on its own in test_isa_threads.py / test_kernels.py).
#
#   bash .ci/sanitize.sh [pytest args...]      e.g. -x tests/test_blob.py
#
# How:
#  * The tracked files (their working-tree state, `git ls-files`) are copied
#    to a temp dir and built there in place with SSDFACE_SANITIZE=1, which
#    setup.py turns into -fsanitize=address,undefined
#    -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1 -fno-wrapv
#    on every compile (the Cython modules, at -O0, the C core and the per-ISA
#    kernel files; in parallel, one compiler per CPU) and on the link. The checkout this runs in is never touched: its
#    in-place .so, build/ and egg-info stay as they are.
#  * Python itself is not instrumented, so the runtimes are LD_PRELOADed
#    (only into the python processes; the tests' own subprocesses inherit it).
#  * Every sanitizer report is also written to a log file (log_path); the run
#    fails on a non-zero pytest exit OR on any report file, so a report from a
#    subprocess or a forked child (e.g. a CLI test that expects exit 1 anyway)
#    cannot slip through.
#  * allocator_may_return_null=1: an absurd allocation (a fuzz seed's .npy
#    header claiming terabytes) must fail as malloc does in production, with
#    NULL and a MemoryError, not abort the run.
#  * UBSan writes its diagnostic to stderr and only its SUMMARY to the log
#    file, so pytest runs with --capture=sys: C-level stderr is not
#    captured per test (and lost when the process aborts) but lands in the
#    variant's log. Both sanitizers abort on the first error, so the Python
#    traceback (faulthandler) names the test.
#  * Leak detection is off: CPython does not free everything at exit (interned
#    objects, arenas, module state), so LeakSanitizer would report those.
#  * .ci/sanitize_check.py (a pytest plugin) stops the run unless ssdface and
#    its extension modules come from the sanitized copy with the runtime
#    loaded, and deselects, by name and reason, tests marked no_asan (none
#    today).
#
# Environment: SSDFACE_SHARED (default ../shared), PYTHON (default python),
# SSDFACE_SANITIZE_ISAS (default: every variant but reference),
# SSDFACE_SANITIZE_REFERENCE=0 (skip the tests parametrized on the plain
# `reference` kernels; default: in the first variant's run),
# SSDFACE_SANITIZE_JOBS (variants run at once; default 2 if the machine has
# 2+ cores: the suite is mostly single-threaded and takes ~3 CPU-minutes
# per variant under ASan; with fewer variants than that, as in CI, each
# variant's tests run in JOBS / variants pytest-xdist workers when
# pytest-xdist is installed), SSDFACE_SANITIZE_KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
CI_DIR="$(pwd)/.ci"  # sanitize_check.py, the pytest plugin
PY=${PYTHON:-python}

SHARED="${SSDFACE_SHARED:-$(cd .. && pwd)/shared}"
[ -d "$SHARED" ] || { echo "sanitize: shared folder $SHARED not found (set SSDFACE_SHARED)"; exit 2; }
SHARED=$(cd "$SHARED" && pwd)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ssdface-sanitize.XXXXXX")
cleanup() {
    if [ "${SSDFACE_SANITIZE_KEEP:-0}" = 1 ]; then
        echo "sanitize: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
SRC="$WORK/src"
mkdir -p "$SRC"
t_start=$SECONDS

# 1. Copy the tracked files (skipping any deleted in the working tree).
git ls-files -z | while IFS= read -r -d '' f; do
    [ -e "$f" ] && printf '%s\0' "$f"
done | xargs -0 cp -P --parents -t "$SRC"

# 2. Build the sanitized extension there. SSDFACE_WEIGHTS is dropped: the
#    build cannot run its packer (the module needs the preloaded runtimes).
echo "sanitize: building with SSDFACE_SANITIZE=1 in $SRC"
if ! (cd "$SRC" && env -u SSDFACE_WEIGHTS SSDFACE_SANITIZE=1 \
        "$PY" setup.py build_ext --inplace >"$WORK/build.log" 2>&1); then
    tail -n 60 "$WORK/build.log"
    echo "sanitize: FAILED to build the sanitized extension"
    exit 1
fi
modules=$(ls "$SRC"/ssdface/_core*.so "$SRC"/ssdface/_testing*.so)
t_build=$((SECONDS - t_start))

# 3. The sanitizer runtimes of the compiler that built it.
CC=$("$PY" -c "import sysconfig; print((sysconfig.get_config_var('CC') or 'gcc').split()[0])")
ASAN_LIB=$(readlink -f "$("$CC" -print-file-name=libasan.so)")
UBSAN_LIB=$(readlink -f "$("$CC" -print-file-name=libubsan.so)")
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
    [ -f "$lib" ] || { echo "sanitize: $CC has no sanitizer runtime ($lib)"; exit 1; }
    # The modules must link the very runtime that is preloaded.
    for module in $modules; do
        ldd "$module" | awk '$2 == "=>" {print $3}' | xargs readlink -f | grep -qxF "$lib" ||
            { echo "sanitize: $module does not link $(basename "$lib")"; exit 1; }
    done
done

REPORTS="$WORK/reports"
mkdir -p "$REPORTS"
# $1: report file prefix. Runs the rest of the arguments with the runtimes.
sanitized() {
    local prefix=$1
    shift
    env LD_PRELOAD="$ASAN_LIB:$UBSAN_LIB" \
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:halt_on_error=1:print_summary=1:log_path=$REPORTS/$prefix.asan" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:print_summary=1:log_path=$REPORTS/$prefix.ubsan" \
        "$@"
}
reports_of() {  # the report files of a variant that hold a finding
    local f
    for f in $(ls "$REPORTS/$1".*san.* 2>/dev/null || true); do
        # allocator_may_return_null=1 still logs every refused allocation
        # (a fuzz seed asking for terabytes gets NULL, then MemoryError):
        # expected, not a finding.
        if grep -qvE '^[[:space:]]*$|WARNING: AddressSanitizer failed to allocate' "$f"; then
            echo "$f"
        fi
    done
}
short_stacks() {  # sanitizer stacks cut to their first 12 frames, no pytest internals
    awk '/^ +#[0-9]+ / { n = substr($1, 2) + 0; if (n == 12) print "    ..."; if (n >= 12) next }
         /site-packages\/(_pytest|pluggy)\/|<frozen runpy>/ { next }
         { print }' "$@"
}
show_reports() {
    local f
    for f in $(reports_of "$1"); do
        echo "----- sanitizer report $(basename "$f")"
        short_stacks "$f" | head -n 150
    done
}
first_report_summary() {  # the SUMMARY line of the first report, if any
    local f
    f=$(reports_of "$1" | head -n 1)
    [ -n "$f" ] && grep -m1 "^SUMMARY:" "$f" | sed -E 's/ in ?$//' || true
}

# 4. Embed the weights as an install would, with the sanitized packer.
if ! (cd "$SRC" && sanitized pack "$PY" -c \
        "import sys; from ssdface.weights import pack_weights; pack_weights(sys.argv[1], sys.argv[2])" \
        "$SHARED/weights/ssd_mobilenetv2_face_nhwc" "ssdface/data/ssd_mobilenetv2_face.blob") ||
        [ -n "$(reports_of pack)" ]; then
    show_reports pack
    echo "sanitize: FAILED packing the weights with the sanitized build"
    exit 1
fi

ISAS=${SSDFACE_SANITIZE_ISAS:-$(cd "$SRC" && sanitized isas "$PY" -c \
    "import ssdface; print(' '.join(i for i in ssdface.available_isas() if i != 'reference'))")}
[ -n "$ISAS" ] || { echo "sanitize: no kernel variant to test"; exit 1; }
JOBS=${SSDFACE_SANITIZE_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
# Fewer variants than jobs (CI sanitizes one): the spare cores run the
# variant's tests in pytest-xdist workers, if it is installed.
n_isas=$(echo $ISAS | wc -w)
WORKERS=$(( JOBS / n_isas ))
if [ "$WORKERS" -ge 2 ] && "$PY" -c "import xdist" 2>/dev/null; then
    XDIST=(-n "$WORKERS")
else
    XDIST=()
    WORKERS=1
fi
echo "sanitize: built in ${t_build}s; variants: $ISAS; $JOBS at a time; $WORKERS pytest process(es) each"
echo "sanitize: runtimes $ASAN_LIB $UBSAN_LIB"

# 5. The whole suite per variant. CI=true: a skipped test fails the run.
#    Tests parametrized on a kernel variant run in that variant's run only
#    (sanitize_check.py); those of `reference` in the first run.
#    OPENBLAS_NUM_THREADS=1: only NumPy's float64 reference uses BLAS, and
#    OpenBLAS's spinning worker threads cost ~15% of the CPU on 2 cores.
run_variant() {
    local isa=$1
    shift
    mkdir -p "$WORK/$isa"
    local TIMEFORMAT="%0R %U %S"
    local rc=0
    { time (cd "$SRC" && sanitized "$isa" env CI=true SSDFACE_SHARED="$SHARED" \
        SSDFACE_ISA="$isa" SSDFACE_SANITIZED_TREE="$SRC" \
        SSDFACE_SANITIZE_REFERENCE=${SSDFACE_SANITIZE_REFERENCE:-$([ "$isa" = "${ISAS%% *}" ] && echo 1 || echo 0)} \
        SSDFACE_SANITIZE_SPLIT=$([ "$n_isas" -gt 1 ] && echo 1 || echo 0) \
        PYTHONPATH="$CI_DIR${PYTHONPATH:+:$PYTHONPATH}" \
        XDG_CACHE_HOME="$WORK/$isa/cache" OPENBLAS_NUM_THREADS=1 \
        "$PY" -m pytest -p sanitize_check -p no:cacheprovider -q -rfE --durations=20 --capture=sys ${XDIST[@]+"${XDIST[@]}"} \
        --basetemp="$WORK/$isa/tmp" "$@" >"$WORK/$isa/pytest.log" 2>&1); } \
        2>"$WORK/$isa/time" || rc=$?
    echo "$rc" >"$WORK/$isa/rc"
}

running=0
for isa in $ISAS; do
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    echo "sanitize: --- test suite with SSDFACE_ISA=$isa"
    run_variant "$isa" "$@" &
    running=$((running + 1))
done
wait || true

# 6. One line per variant; details of any failure.
status=0
summaries=()
for isa in $ISAS; do
    rc=$(cat "$WORK/$isa/rc" 2>/dev/null || echo "?")
    read -r wall user sys <"$WORK/$isa/time" || true
    result=$(grep -E "(passed|failed|errors?|no tests ran|deselected).* in [0-9.]+s" \
        "$WORK/$isa/pytest.log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//' || true)
    reports=$(reports_of "$isa")
    if [ "$rc" = 0 ] && [ -z "$reports" ]; then
        verdict=PASS
    else
        verdict=FAIL
        status=1
        echo "===== SSDFACE_ISA=$isa: pytest exit $rc; $(echo "$reports" | grep -c . || true) sanitizer report(s)"
        short_stacks "$WORK/$isa/pytest.log" | tail -n 80
        show_reports "$isa"
    fi
    if [ -n "$reports" ]; then
        result="${result:+$result; }$(first_report_summary "$isa")"
    fi
    summaries+=("sanitize: $verdict $isa: ${result:-no pytest summary (exit $rc)}; wall ${wall:-?}s, cpu $(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN{printf "%.0f", u+s}')s")
done
for isa in $ISAS; do  # what sanitize_check.py found each run imports
    grep -h -m1 "^sanitized build:" "$WORK/$isa/pytest.log" | sed 's/^/sanitize: /' || true
done
printf '%s\n' "${summaries[@]}"
echo "sanitize: total ${SECONDS}s (build ${t_build}s)"
exit $status
