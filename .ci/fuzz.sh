#!/usr/bin/env bash
# Fuzz ssdface's entry points with atheris for a bounded time (tests/fuzz).
#
#   .ci/fuzz.sh [SECONDS [TARGET...]]
#
# Runs each target (default: blob npy array imagefile) for SECONDS (default
# $FUZZ_SECONDS, else 60) on a fresh temporary copy of its seed corpus,
# $FUZZ_JOBS targets at a time (default: one per CPU; each fuzzer is a
# single process on one core), their logs shown in order once all are done.
# Fails (non-zero exit) on any finding: a Python
# exception outside the target's contract, a crash, a hang (-timeout) or too
# much memory; each artifact is printed (base64) with the command that
# replays it. Set FUZZ_KEEP=DIR to keep the grown corpora and artifacts there.
# Needs the shared inputs (SSDFACE_SHARED or ../shared) and a built ssdface.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(blob npy array imagefile)
export SSDFACE_SHARED="${SSDFACE_SHARED:-$(cd .. && pwd)/shared}"
export PYTHONUNBUFFERED=1

if ! python -c "import atheris" 2>/dev/null; then
    echo "fuzz: installing atheris"
    python -m pip install --quiet atheris || { echo "fuzz: cannot install atheris" >&2; exit 2; }
fi

work=$(mktemp -d -t ssdface-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=()
summary=()

jobs="${FUZZ_JOBS:-$(nproc)}"
for target in "${targets[@]}"; do
    script="tests/fuzz/fuzz_${target}.py"
    [ -f "$script" ] || { echo "fuzz: no target $target ($script)" >&2; exit 2; }
done

run_target() {  # fuzz $1 for $seconds in $work/$1; its exit code in rc
    local target=$1 dir="$work/$1" max_len
    mkdir -p "$dir/artifacts"
    cp -r "tests/fuzz/corpus/$target" "$dir/corpus"
    case "$target" in  # longest input worth trying: structured plans are short
        blob) max_len=512 ;;
        array) max_len=1024 ;;
        imagefile) max_len=16384 ;;
        *) max_len=4096 ;;
    esac
    # libFuzzer stops itself after -max_total_time; the outer timeout only
    # catches a hang that its -timeout watchdog could not interrupt.
    timeout -k 10 $((seconds + 180)) nice -n 5 python "tests/fuzz/fuzz_${target}.py" \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len="$max_len" \
        -len_control=0 \
        -artifact_prefix="$dir/artifacts/" -print_final_stats=1 "$dir/corpus" \
        >"$dir/log" 2>&1
    echo $? >"$dir/rc"
}

echo "=== fuzz ${targets[*]} for ${seconds}s each, $jobs at a time"
running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_target "$target" &
    running=$((running + 1))
done
wait || true

for target in "${targets[@]}"; do
    script="tests/fuzz/fuzz_${target}.py"
    dir="$work/$target"
    rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
    echo "=== fuzz $target for ${seconds}s"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
    grep -E '^#stats' "$dir/log" | tail -1
    artifacts=("$dir"/artifacts/*)
    if [ "$rc" -ne 0 ] || [ -e "${artifacts[0]}" ]; then
        failed+=("$target")
        summary+=("$target: FINDING (exit $rc) after ${execs:-?} runs")
        echo "--- $target: finding (exit $rc); end of the log:"
        tail -n 60 "$dir/log"
        [ "$rc" -eq 124 ] && echo "--- $target: the run hung past the outer timeout"
        for a in "${artifacts[@]}"; do
            [ -e "$a" ] || continue
            echo "--- artifact $(basename "$a") ($(stat -c %s "$a") bytes), base64:"
            head -c 65536 "$a" | base64 -w 100
            echo "--- to reproduce: save it (base64 -d) as FILE, then:"
            echo "    SSDFACE_SHARED=$SSDFACE_SHARED python $script FILE"
        done
    else
        summary+=("$target: ok, ${execs:-?} runs in ${seconds}s (${rate:-?} exec/s)")
    fi
    if [ -n "${FUZZ_KEEP:-}" ]; then
        mkdir -p "$FUZZ_KEEP/$target"
        cp -r "$dir/corpus" "$dir/artifacts" "$dir/log" "$FUZZ_KEEP/$target/"
    fi
done

echo "=== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in: ${failed[*]}" >&2
    exit 1
fi
