#!/usr/bin/env bash
# Runs Radiant's cargo-fuzz targets for a bounded time each and fails if any finds a crash.
#
#   fuzz/run.sh SECONDS [TARGET...]      (default: every target in fuzz/fuzz_targets/)
#
# Each target runs for SECONDS of fuzzing (-max_total_time) on corpus/<target>/ (written,
# git-ignored), with seeds/<target>/ as a second, read-only corpus dir: libFuzzer only
# adds new inputs to the first dir it is given. A crash leaves its input in
# artifacts/<target>/; the script prints that path, keeps going with the other targets
# and exits 1 at the end. Targets run one after another: the machine is shared.
#
# Toolchain: this must work on stable Rust (1.95 here, no nightly installed).
# cargo-fuzz's default sanitizer is AddressSanitizer, which it enables with
# `-Zsanitizer=address`; stable rustc refuses -Z flags. Two ways around that:
#   1. `RUSTC_BOOTSTRAP=1 cargo fuzz run` (ASan) makes stable accept the -Z flag. It
#      builds and works here, but it tells rustc to pretend to be nightly, and ASan
#      buys little for this code: radiant-protocol and radiant deny `unsafe_code`, so
#      there is no memory corruption for ASan to find, only panics, which libFuzzer
#      catches without it. It also costs about 60% of the executions per second
#      (decode_frame, -O builds, 10 s each, here: 27.6k exec/s with ASan, 71k without).
#   2. `cargo fuzz run --sanitizer none`: cargo-fuzz then passes only stable codegen
#      flags (-Cpasses=sancov-module, -Cllvm-args=-sanitizer-coverage-*, --cfg fuzzing),
#      so coverage-guided fuzzing works on plain stable. Panics, failed asserts of the
#      oracles in radiant_protocol::fuzzing, debug assertions and integer overflow
#      (the default build is release with debug assertions) all abort and are reported.
# We use 2. Set RADIANT_FUZZ_SANITIZER=address to get 1 (RUSTC_BOOTSTRAP is then set
# for the cargo-fuzz commands only).
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}

[[ $# -ge 1 && $1 =~ ^[1-9][0-9]*$ ]] || usage
seconds=$1
shift

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$fuzz_dir"

sanitizer=${RADIANT_FUZZ_SANITIZER:-none}
cargo_fuzz=(cargo fuzz)
if [[ $sanitizer != none ]]; then
    cargo_fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz is missing; installing it (takes a few minutes)" >&2
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Build all targets in one cargo invocation first (`cargo fuzz build` takes one target
# or none), so the timeout below bounds fuzzing only and compile time never eats into it.
"${cargo_fuzz[@]}" build --sanitizer "$sanitizer"
# The built binaries are run directly below, not through `cargo fuzz run`: cargo would
# take the build lock again, and a wait for it (another cargo in this tree) would count
# against a target's timeout and kill it before its final stats.
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$host/release

# Why 60 s: libFuzzer stops itself after -max_total_time but finishes the input in
# hand and prints stats; -timeout bounds one input, so this margin is never needed
# unless libFuzzer itself hangs.
margin=60
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()

for target in "${targets[@]}"; do
    corpus=("corpus/$target")
    mkdir -p "corpus/$target" "artifacts/$target"
    if [[ -d seeds/$target ]]; then
        corpus+=("seeds/$target")
    fi
    echo "=== $target: ${seconds}s, corpus ${corpus[*]}" >&2
    status=0
    timeout --kill-after=10 $((seconds + margin)) \
        "$bin_dir/$target" "${corpus[@]}" \
        -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        2>&1 | tee "$logs/$target.log" || status=$?
    if [[ $status -ne 0 ]]; then
        failed+=("$target")
        artifact=$(grep -o 'Test unit written to [^ ]*' "$logs/$target.log" | tail -n 1 || true)
        echo "=== $target FAILED (exit $status): ${artifact:-no artifact written}" >&2
    else
        echo "=== $target passed" >&2
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run.sh: crashes or failures in: ${failed[*]} (inputs under $fuzz_dir/artifacts/)" >&2
    exit 1
fi
echo "run.sh: ${#targets[@]} target(s) ran ${seconds}s each without a crash" >&2
