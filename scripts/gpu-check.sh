#!/usr/bin/env bash
# Build, test, sanitize and benchmark flashkm's CUDA backend on a GPU machine, in one command
# from the repository root:
#
#   bash scripts/gpu-check.sh [gpu_side_by_side.py options, e.g. --quick or --configs 1 5]
#
# Stages (GPU_CHECK_STAGES, comma-separated, default "build,test,sanitize,bench"; "python" is
# opt-in: the Python package built with CUDA, its tests, its overhead benchmark and the
# side-by-side benchmark through the package, log appended to test.log):
#   build     cmake -DFLASHKM_CUDA=ON -DCMAKE_BUILD_TYPE=Release in build-gpu (Ninja if found)
#   test      ctest --output-on-failure (every test; the GPU tests skip without a GPU)
#   sanitize  compute-sanitizer memcheck, then racecheck, on the GPU tests (ctest tests whose
#             name matches SANITIZE_TESTS, default 'cuda|gpu|update|top3_device|scan', with their command line and
#             environment; else the test_cuda*/test_gpu* executables), FLASHKM_TEST_SMALL=1
#             FLASHKM_TEST_SANITIZE=1 (tests that read it run a reduced set: test_kmeanspp, test_exact,
#             test_determinism)
#   bench     checks the ctypes layout of bench/gpu_side_by_side.py against flashkm.h, runs
#             that benchmark (flashkm vs flash-kmeans from third_party_ref/, which must be
#             carried to the machine: it is git-ignored), then build-gpu/bench/bench_cuda and
#             build-gpu/bench/bench_kpp_cuda (k-means++ on the GPU) if they were built
#   largeN    (opt-in) bench/bench_largeN.py: out-of-core flashkm vs flash-kmeans' kmeans_largeN
#             on pinned host data (LARGEN_ARGS, default "--n 64M 300M"); log appended to
#             bench.log, results in largeN.csv (appended to bench.log instead when 8 files are
#             already there). N = 300M needs a 128 GB host and a few minutes: run it alone,
#             GPU_CHECK_STAGES=build,largeN
# A stage runs even when an earlier one failed, wherever that makes sense (test and sanitize
# need a build; bench needs libflashkm.so).
#
# Output: $OUT (./gpu-check-out when unset), at most 8 files: summary.txt (each stage
# PASS/FAIL/SKIP with its duration, rewritten after every stage), env.log (nvidia-smi, nvcc,
# versions), build.log, test.log, sanitize.log, bench.log, gpu_side_by_side.csv, BENCH_GPU.md.
# Exit status: 0 when no stage failed, 1 otherwise.
#
# Environment:
#   GPU_CHECK_STAGES   stages to run (see above)
#   BENCH_ARGS         extra options for bench/gpu_side_by_side.py (before the script's own
#                      arguments, which are passed through too)
#   BENCH_ISOLATE      1 (default): one child process per benchmark configuration
#                      (--isolate), so that a crash costs one configuration; 0: one process
#   BENCH_CUDA_ARGS    arguments for build-gpu/bench/bench_cuda (default none)
#   BENCH_KPP_ARGS     arguments for build-gpu/bench/bench_kpp_cuda (default "--reps 3 --data
#                      both --ab": the issue's N=1M K=1024 D=128 f16 on blobs and on noise, each
#                      with pruning on and off (compared bitwise), and the CPU comparison)
#   LARGEN_ARGS        arguments for bench/bench_largeN.py (default "--n 64M 300M")
#   SANITIZE_TOOLS     compute-sanitizer tools to run, in order (default "memcheck racecheck")
#   SANITIZE_TESTS     regular expression over ctest test names (default 'cuda|gpu|update|top3_device|scan';
#                      test_stream's millions of rows are too slow under the tools: run it
#                      alone with SANITIZE_TESTS=stream GPU_CHECK_STAGES=build,sanitize)
#   GPU_CHECK_BUDGET   seconds for the whole script (default 570: the device tool stops a
#                      command at 600 s); every stage is cut to what is left
#   GPU_CHECK_TIMEOUT_BUILD / _TEST / _SANITIZE / _BENCH_CUDA / _BENCH_KPP / _PYTHON   per-stage
#                      caps in seconds (defaults 300 / 180 / 240 / 60 / 60 / 420; the Python
#                      benchmark gets the rest)
#   PY_OVERHEAD_ARGS   extra options for bench/python_overhead.py (python stage)
#   PY_SBS_ARGS        options for bench/gpu_side_by_side.py --via package (python stage;
#                      default "--quick --skip flash-kmeans")
#   BUILD_DIR (build-gpu), JOBS (16), CTEST_JOBS (4), CMAKE_ARGS (extra configure options)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
OUT="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$OUT" || { echo "gpu-check: cannot create $OUT" >&2; exit 1; }
OUT="$(cd "$OUT" && pwd)"

STAGES="${GPU_CHECK_STAGES:-build,test,sanitize,bench}"
BUILD_DIR="${BUILD_DIR:-build-gpu}"
JOBS="${JOBS:-16}"
CTEST_JOBS="${CTEST_JOBS:-4}"
BUDGET="${GPU_CHECK_BUDGET:-570}"
T_BUILD="${GPU_CHECK_TIMEOUT_BUILD:-300}"
T_TEST="${GPU_CHECK_TIMEOUT_TEST:-180}"
T_SANITIZE="${GPU_CHECK_TIMEOUT_SANITIZE:-240}"
T_BENCH_CUDA="${GPU_CHECK_TIMEOUT_BENCH_CUDA:-60}"
T_BENCH_KPP="${GPU_CHECK_TIMEOUT_BENCH_KPP:-60}"
BENCH_ISOLATE="${BENCH_ISOLATE:-1}"
KPP_ARGS="${BENCH_KPP_ARGS-"--reps 3 --data both --ab"}"
LIB="$BUILD_DIR/src/libflashkm.so"
SUMMARY="$OUT/summary.txt"
SCRIPT_ARGS="$*"
START=$(date +%s)
STAGE_LINES=()
ANY_FAIL=0

for s in ${STAGES//,/ }; do
  case "$s" in build|test|python|sanitize|bench|largeN) ;;
    *) echo "gpu-check: unknown stage '$s' in GPU_CHECK_STAGES (build,test,python,sanitize,bench,largeN)" >&2
       exit 2 ;;
  esac
done

now() { date +%s; }
stamp() { date '+%H:%M:%S'; }
say() { echo "[$(stamp)] gpu-check: $*"; }
want() { [[ ",$STAGES," == *",$1,"* ]]; }
left() { echo $(( BUDGET - ($(now) - START) )); }
# cap SECONDS: the smaller of SECONDS and the time left (less a 10 s margin), at least 0
cap() { local l; l=$(( $(left) - 10 )); (( l < 0 )) && l=0; (( $1 < l )) && echo "$1" || echo "$l"; }

write_summary() {
  {
    echo "gpu-check summary  $(date -u '+%Y-%m-%d %H:%M UTC')  host $(hostname 2>/dev/null)"
    echo "gpu: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
    echo "stages asked: $STAGES; bench arguments: ${BENCH_ARGS:-} $SCRIPT_ARGS"
    echo
    printf '%-9s %-5s %8s  %s\n' stage status seconds note
    local l
    for l in "${STAGE_LINES[@]}"; do echo "$l"; done
    echo
    echo "overall: $([[ $ANY_FAIL == 0 ]] && echo PASS || echo FAIL) (elapsed $(( $(now) - START )) s)"
  } > "$SUMMARY"
}

# record STAGE STATUS SECONDS NOTE
record() {
  STAGE_LINES+=("$(printf '%-9s %-5s %8s  %s' "$1" "$2" "$3" "$4")")
  [[ "$2" == FAIL ]] && ANY_FAIL=1
  write_summary
  say "$1: $2 ($3 s)${4:+ - $4}"
}

# bench_binary NAME CAP [ARGS...]: $BUILD_DIR/bench/NAME, if built, for at most CAP seconds (cut to
# what is left), output appended to bench.log, its result added to notes / bench_fail
bench_binary() {
  local name="$1" t rc
  t=$(cap "$2"); shift 2
  [[ -x "$BUILD_DIR/bench/$name" ]] || return 0
  if (( t < 5 )); then notes+=("$name: no time left"); return 0; fi
  say "bench: $BUILD_DIR/bench/$name $* (up to ${t} s)"
  echo "== $BUILD_DIR/bench/$name $*" >> "$OUT/bench.log"
  timeout -k 10 "$t" "$BUILD_DIR/bench/$name" "$@" >> "$OUT/bench.log" 2>&1
  rc=$?
  echo "== $name exit status $rc" >> "$OUT/bench.log"
  if [[ $rc == 0 ]]; then notes+=("$name: ok")
  else notes+=("$name: exit status $rc"); bench_fail=1; fi
}

# tail_log FILE N: the end of a log on the console, indented
tail_log() { echo "---- last $2 lines of $1"; tail -n "$2" "$1" | sed 's/^/    /'; echo "----"; }

# ------------------------------------------------------------------ env (always, quick)
{
  echo "== date: $(date -u)"
  echo "== nvidia-smi"; nvidia-smi 2>&1 || echo "(nvidia-smi failed)"
  echo "== nvidia-smi --query-gpu"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv 2>&1
  echo "== nvcc --version"; nvcc --version 2>&1 || echo "(nvcc not found)"
  echo "== cmake: $(cmake --version 2>&1 | head -1); ninja: $(ninja --version 2>&1 || echo none)"
  echo "== cc: $(cc --version 2>&1 | head -1)"
  echo "== compute-sanitizer: $(compute-sanitizer --version 2>&1 | tail -1 || echo none)"
  echo "== python: $(python3 --version 2>&1)"
  python3 - <<'EOF' 2>&1
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as e:
    print("torch: not usable:", e)
try:
    import triton
    print("triton", triton.__version__)
except Exception as e:
    print("triton: not usable:", e)
EOF
  echo "== CPU: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null)"
  echo "== git: $(git rev-parse --short HEAD 2>/dev/null || echo 'no git repository here')"
  echo "== third_party_ref/flash_kmeans: $(ls third_party_ref/flash_kmeans 2>/dev/null | tr '\n' ' ' || true)"
} > "$OUT/env.log" 2>&1
say "GPU: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1); stages: $STAGES; budget ${BUDGET} s; output in $OUT"
write_summary

# ------------------------------------------------------------------ build
BUILD_OK=0
BUILD_FAILED=0
if want build; then
  t0=$(now); t=$(cap "$T_BUILD")
  GEN=()
  if [[ -f "$BUILD_DIR/CMakeCache.txt" ]]; then
    :  # keep the generator the folder was configured with
  elif command -v ninja >/dev/null 2>&1; then
    GEN=(-G Ninja)
  fi
  say "build: configuring and building in $BUILD_DIR (up to ${t} s)"
  build_steps() {
    echo "== cmake -S . -B $BUILD_DIR ${GEN[*]} -DCMAKE_BUILD_TYPE=Release -DFLASHKM_CUDA=ON ${CMAKE_ARGS:-}"
    # shellcheck disable=SC2086
    timeout -k 10 "$t" cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DFLASHKM_CUDA=ON ${CMAKE_ARGS:-} || return $?
    # keep going past a failing target, so that the library and the other tests still build
    local keep=(-- -k)
    grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$BUILD_DIR/CMakeCache.txt" && keep=(-- -k 0)
    echo "== cmake --build $BUILD_DIR -j$JOBS ${keep[*]}"
    local rest=$(( t - ($(now) - t0) )); (( rest < 1 )) && rest=1
    timeout -k 10 "$rest" cmake --build "$BUILD_DIR" -j"$JOBS" "${keep[@]}"
  }
  {
    build_steps
  } > "$OUT/build.log" 2>&1
  rc=$?
  if [[ $rc == 0 ]]; then
    BUILD_OK=1
    record build PASS $(( $(now) - t0 )) "$(grep -c -i 'warning' "$OUT/build.log") lines mention warnings"
  else
    note="exit status $rc"; [[ $rc == 124 || $rc == 137 ]] && note="timed out after ${t} s"
    BUILD_FAILED=1
    record build FAIL $(( $(now) - t0 )) "$note (build.log)"
    grep -E 'error|Error|FAILED' "$OUT/build.log" | head -20
    tail_log "$OUT/build.log" 40
  fi
else
  [[ -f "$LIB" ]] && BUILD_OK=1
  record build SKIP 0 "not asked for$([[ $BUILD_OK == 1 ]] && echo "; using the existing $BUILD_DIR")"
fi

# ------------------------------------------------------------------ test
if want test; then
  t0=$(now); t=$(cap "$T_TEST")
  # after a failed build too: what did build still runs, what did not shows as Not Run
  if [[ ! -f "$BUILD_DIR/CTestTestfile.cmake" ]]; then
    record test SKIP 0 "no build in $BUILD_DIR"
  elif (( t < 20 )); then
    record test SKIP 0 "no time left (budget ${BUDGET} s)"
  else
    say "test: ctest -j$CTEST_JOBS (up to ${t} s)"
    timeout -k 10 "$t" ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$CTEST_JOBS" \
      --timeout "$t" > "$OUT/test.log" 2>&1
    rc=$?
    res=$(grep -E 'tests passed|tests failed' "$OUT/test.log" | tail -1)
    [[ $BUILD_FAILED == 1 ]] && res+=" (after a failed build)"
    if [[ $rc == 0 ]]; then
      record test PASS $(( $(now) - t0 )) "$res"
    else
      note="${res:-exit status $rc}"; [[ $rc == 124 || $rc == 137 ]] && note="timed out after ${t} s"
      record test FAIL $(( $(now) - t0 )) "$note (test.log)"
      grep -E '^\s*[0-9]+ - .*(Failed|Timeout|Exception|Not Run)' "$OUT/test.log" | head -20
      tail_log "$OUT/test.log" 40
    fi
  fi
fi

# ------------------------------------------------------------------ python
# The Python package with the CUDA backend compiled in (FLASHKM_CUDA=ON reaches CMake through
# pyproject.toml's cmake.define), installed offline (the machine has no network: numpy and
# torch come from its own Python, scikit-build-core, scikit-learn and pytest from it or from a
# carried wheelhouse .whl/, see scripts/make-wheelhouse.sh) into a venv that sees the system
# packages; then tests/python (the GPU-array tests run where torch
# sees a GPU), bench/python_overhead.py (the package's overhead over the C library, N=1M
# K=1024 D=128 f16 on a CUDA torch tensor, target <= 5 %) and a smoke run of
# bench/gpu_side_by_side.py --via package (PY_SBS_ARGS, default "--quick --skip
# flash-kmeans"). Everything, CSV rows included, is appended to test.log (the device tool
# returns at most 8 files). Stage cap GPU_CHECK_TIMEOUT_PYTHON (default 420 s).
if want python; then
  t0=$(now); t=$(cap "${GPU_CHECK_TIMEOUT_PYTHON:-420}")
  if (( t < 60 )); then
    record python SKIP 0 "no time left (budget ${BUDGET} s)"
  else
    py_end=$(( $(now) + t ))
    py_left() { local l=$(( py_end - $(now) )); (( l < 1 )) && l=1; echo "$l"; }
    py_notes=()
    say "python: pip install (FLASHKM_CUDA=ON), pytest, python_overhead.py, gpu_side_by_side.py --via package (up to ${t} s)"
    {
      echo; echo "==== python package (FLASHKM_CUDA=ON), pytest tests/python"
      python3 -m venv --system-site-packages build-py/gpu-venv &&
      # python3 may itself be a virtual environment (the GPU machine's torch lives in one):
      # a venv made from it sees only the base interpreter's packages, so its site-packages
      # are added through a .pth file
      python3 -c 'import site; print("\n".join(site.getsitepackages()))' \
        > "$(build-py/gpu-venv/bin/python -c 'import site; print(site.getsitepackages()[0])')/outer-python.pth" &&
      # the build backend and test tools, from a carried wheelhouse (.whl/, git-ignored:
      # make it with scripts/make-wheelhouse.sh) when the machine's Python lacks them
      if [[ -d .whl ]]; then
        build-py/gpu-venv/bin/pip install --no-index --find-links .whl -q \
          scikit-build-core pytest scikit-learn
      fi &&
      FLASHKM_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" timeout -k 10 "$(py_left)" \
        build-py/gpu-venv/bin/pip install --no-build-isolation --no-deps --no-index -q . &&
      build-py/gpu-venv/bin/python -c 'import flashkm; print("flashkm.build_info():", flashkm.build_info())' &&
      (cd tests/python && timeout -k 10 "$(py_left)" ../../build-py/gpu-venv/bin/python -m pytest \
        -q -p no:cacheprovider -rs .)
    } >> "$OUT/test.log" 2>&1
    rc=$?
    res=$(grep -E '[0-9]+ (passed|failed)' "$OUT/test.log" | tail -1)
    py_notes+=("pip install + pytest: ${res:-exit status $rc}")
    py_fail=$(( rc != 0 ))
    if [[ -x build-py/gpu-venv/bin/python ]] && build-py/gpu-venv/bin/python -c 'import flashkm' 2>/dev/null; then
      ov_csv=build-py/python_overhead.csv
      rm -f "$ov_csv"
      (
        echo; echo "==== python3 bench/python_overhead.py ${PY_OVERHEAD_ARGS:-}"
        PYTHONUNBUFFERED=1 timeout -k 10 "$(py_left)" build-py/gpu-venv/bin/python \
          bench/python_overhead.py --csv "$ov_csv" ${PY_OVERHEAD_ARGS:-}
        orc=$?
        echo "== python_overhead.py exit status $orc; CSV:"
        [[ -f $ov_csv ]] && cat "$ov_csv"
        exit $orc
      ) >> "$OUT/test.log" 2>&1
      orc=$?
      over=$(awk -F, 'NR > 1 && $11 != "c_api" { printf "%s%s %s%%", sep, $11, $14; sep=", " }' "$ov_csv" 2>/dev/null)
      py_notes+=("overhead: ${over:-none measured} ($([[ $orc == 0 ]] && echo PASS || echo "FAIL, exit $orc"))")
      (( orc != 0 )) && py_fail=1
      sbs_dir=build-py/sbs-package
      mkdir -p "$sbs_dir"
      (
        echo; echo "==== python3 bench/gpu_side_by_side.py --via package ${PY_SBS_ARGS:---quick --skip flash-kmeans}"
        PYTHONUNBUFFERED=1 timeout -k 10 "$(py_left)" build-py/gpu-venv/bin/python \
          bench/gpu_side_by_side.py --via package --out-csv "$sbs_dir/gpu_side_by_side.csv" \
          --out-md "$sbs_dir/BENCH_GPU.md" ${PY_SBS_ARGS:---quick --skip flash-kmeans}
        src=$?
        echo "== gpu_side_by_side.py --via package exit status $src; CSV:"
        [[ -f $sbs_dir/gpu_side_by_side.csv ]] && cat "$sbs_dir/gpu_side_by_side.csv"
        exit $src
      ) >> "$OUT/test.log" 2>&1
      src=$?
      py_notes+=("side-by-side via package: exit $src")
      (( src != 0 )) && py_fail=1
    fi
    note=$(IFS=';'; echo "${py_notes[*]}")
    if [[ $py_fail == 0 ]]; then record python PASS $(( $(now) - t0 )) "${note//;/; }"
    else record python FAIL $(( $(now) - t0 )) "${note//;/; } (test.log)"; tail_log "$OUT/test.log" 30
    fi
  fi
fi

# ------------------------------------------------------------------ sanitize
# The GPU tests: every ctest test that holds the resource lock "gpu" and whose name matches
# SANITIZE_TESTS (default 'cuda|gpu|update|top3_device|scan'), run
# with its own command line and ENVIRONMENT property (so test_reference_cuda runs
# test_reference with FLASHKM_TEST_BACKEND=cuda); if ctest cannot list them, every executable
# under $BUILD_DIR/tests named test_cuda* or test_gpu*. Each under memcheck (--leak-check
# full), then each under racecheck, with FLASHKM_TEST_SMALL=1 FLASHKM_TEST_SANITIZE=1. A test
# that exits 77 (no GPU) counts as skipped.
list_gpu_tests() {
  python3 - "$BUILD_DIR" "${SANITIZE_TESTS:-cuda|gpu|update|top3_device|scan}" <<'EOF' 2>/dev/null
import json, re, shlex, subprocess, sys
build, pat = sys.argv[1], sys.argv[2]
j = json.loads(subprocess.run(["ctest", "--test-dir", build, "--show-only=json-v1"],
                              capture_output=True, text=True, check=True).stdout)
def locks(t):
    for p in t.get("properties", []):
        if p["name"] == "RESOURCE_LOCK":
            return p["value"]
    return []
# the GPU tests hold the ctest resource lock "gpu" (tests/CMakeLists.txt): a pattern that also
# matches a CPU entry (test_kmeanspp beside test_kmeanspp_cuda) must not run the CPU one under
# the tools (racecheck fails a process that never uses CUDA)
tests = j.get("tests", [])
gpu_only = any("gpu" in locks(t) for t in tests)
for t in tests:
    if not re.search(pat, t["name"]) or not t.get("command") or (gpu_only and "gpu" not in locks(t)):
        continue
    env, wd = [], "."
    for p in t.get("properties", []):
        if p["name"] == "ENVIRONMENT":
            env = p["value"]
        elif p["name"] == "WORKING_DIRECTORY":
            wd = p["value"]
    # "-" for no environment: read with IFS=tab would merge two tabs
    print("\t".join([t["name"], wd, " ".join(shlex.quote(e) for e in env) or "-",
                     " ".join(shlex.quote(c) for c in t["command"])]))
EOF
}
if want sanitize; then
  t0=$(now)
  RUNS=()
  if [[ $BUILD_OK == 1 ]]; then
    mapfile -t RUNS < <(list_gpu_tests)
    if [[ ${#RUNS[@]} == 0 ]]; then
      while IFS= read -r exe; do
        RUNS+=("$(basename "$exe")"$'\t'"."$'\t'"-"$'\t'"$(printf '%q' "$exe")")
      done < <(find "$BUILD_DIR/tests" -maxdepth 2 -type f -perm -u+x \
                 \( -name 'test_cuda*' -o -name 'test_gpu*' \) 2>/dev/null | sort)
    fi
  fi
  if ! command -v compute-sanitizer >/dev/null 2>&1; then
    record sanitize SKIP 0 "compute-sanitizer not found"
  elif [[ $BUILD_OK != 1 ]]; then
    record sanitize SKIP 0 "no successful build in $BUILD_DIR"
  elif [[ ${#RUNS[@]} == 0 ]]; then
    record sanitize SKIP 0 "no GPU tests found (ctest names matching '${SANITIZE_TESTS:-cuda|gpu|update|top3_device|scan}', test_cuda*/test_gpu* under $BUILD_DIR/tests)"
  else
    stage_end=$(( $(now) + $(cap "$T_SANITIZE") ))
    nfail=0; nrun=0; nskip77=0; skipped=(); failed=()
    : > "$OUT/sanitize.log"
    for tool in ${SANITIZE_TOOLS:-memcheck racecheck}; do
      for run in "${RUNS[@]}"; do
        IFS=$'\t' read -r name wd envs cmd <<< "$run"
        [[ "$envs" == "-" ]] && envs=""
        t=$(( stage_end - $(now) ))
        if (( t < 5 )); then skipped+=("$tool:$name"); continue; fi
        say "sanitize: $tool $name (up to ${t} s)"
        extra=""; [[ $tool == memcheck ]] && extra="--leak-check full"
        {
          echo "==== $tool $name: (cd $wd && env FLASHKM_TEST_SMALL=1 FLASHKM_TEST_SANITIZE=1 $envs compute-sanitizer --tool $tool $extra --error-exitcode 99 $cmd)"
          (cd "$wd" && eval "env FLASHKM_TEST_SMALL=1 FLASHKM_TEST_SANITIZE=1 $envs timeout -k 10 $t compute-sanitizer --tool $tool $extra --error-exitcode 99 $cmd")
          rc=$?
          echo "==== exit status $rc"
        } >> "$OUT/sanitize.log" 2>&1
        nrun=$((nrun + 1))
        if [[ $rc == 77 ]]; then
          nskip77=$((nskip77 + 1))
        elif [[ $rc != 0 ]]; then
          nfail=$((nfail + 1)); failed+=("$tool:$name($rc)")
          say "sanitize: $tool $name FAILED (exit status $rc$([[ $rc == 124 || $rc == 137 ]] && echo ', timed out'))"
        fi
      done
    done
    note="$nrun runs (${#RUNS[@]} tests x ${SANITIZE_TOOLS:-memcheck racecheck}), $nfail failed"
    [[ $nfail -gt 0 ]] && note+=": ${failed[*]}"
    [[ $nskip77 -gt 0 ]] && note+="; $nskip77 skipped themselves (exit 77: no GPU?)"
    [[ ${#skipped[@]} -gt 0 ]] && note+="; INCOMPLETE, out of time for: ${skipped[*]}"
    # racecheck warnings (possible hazards, e.g. warp-synchronous accesses) do not change the
    # exit status: name them so that they are looked at (details in sanitize.log)
    warned=$(awk '/^==== racecheck /{name=$3; sub(/:$/, "", name)}
                  /RACECHECK SUMMARY/ && match($0, /[0-9]+ warnings/) {
                    w = substr($0, RSTART, RLENGTH); sub(/ warnings/, "", w); if (w + 0 > 0) printf "%s(%s) ", name, w }' \
             "$OUT/sanitize.log")
    [[ -n "$warned" ]] && note+="; racecheck warnings: ${warned% }"
    if [[ $nfail == 0 ]]; then
      record sanitize PASS $(( $(now) - t0 )) "$note"
    else
      record sanitize FAIL $(( $(now) - t0 )) "$note (sanitize.log)"
      grep -E '^==== |ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY' "$OUT/sanitize.log" | tail -30
    fi
  fi
fi

# ------------------------------------------------------------------ bench
if want bench; then
  t0=$(now)
  : > "$OUT/bench.log"
  if [[ ! -f "$LIB" ]]; then
    record bench SKIP 0 "$LIB not found (build first)"
  else
    # 1. the ctypes mirror of the structs against the header
    abi_dir="$BUILD_DIR/gpu-check-abi"
    mkdir -p "$abi_dir"
    cat > "$abi_dir/abi.c" <<'EOF'
#include <stdio.h>
#include <stddef.h>
#include "flashkm.h"
#define F(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
int main(void) {
    printf("fkm_params.size %zu\n", sizeof(fkm_params));
    F(fkm_params, k); F(fkm_params, max_iter); F(fkm_params, tol); F(fkm_params, init);
    F(fkm_params, init_centroids); F(fkm_params, seed); F(fkm_params, metric);
    F(fkm_params, empty); F(fkm_params, n_threads); F(fkm_params, progress);
    F(fkm_params, progress_user); F(fkm_params, precision); F(fkm_params, n_init);
    F(fkm_params, gpu_mem_bytes);
    printf("fkm_iter_info.size %zu\n", sizeof(fkm_iter_info));
    F(fkm_iter_info, iter); F(fkm_iter_info, inertia); F(fkm_iter_info, max_shift_sq);
    F(fkm_iter_info, rel_shift); F(fkm_iter_info, n_changed); F(fkm_iter_info, n_empty);
    F(fkm_iter_info, seconds); F(fkm_iter_info, assign_seconds); F(fkm_iter_info, update_seconds);
    printf("fkm_result.size %zu\n", sizeof(fkm_result));
    F(fkm_result, inertia); F(fkm_result, n_iter); F(fkm_result, converged);
    F(fkm_result, inertia_per_iter);
    return 0;
}
EOF
    abi_ok=0
    {
      echo "== ctypes layout of bench/gpu_side_by_side.py vs include/flashkm.h"
      if cc -std=c11 -Iinclude "$abi_dir/abi.c" -o "$abi_dir/abi" &&
         "$abi_dir/abi" > "$abi_dir/c.txt" &&
         python3 bench/gpu_side_by_side.py --print-abi > "$abi_dir/py.txt" &&
         diff "$abi_dir/c.txt" "$abi_dir/py.txt"; then
        echo "   same sizes and offsets"; abi_ok=1
      else
        echo "   MISMATCH (or the check could not run): fix the ctypes Structures"
      fi
    } >> "$OUT/bench.log" 2>&1
    if [[ $abi_ok != 1 ]]; then
      record bench FAIL $(( $(now) - t0 )) "ctypes layout differs from flashkm.h (bench.log)"
      tail_log "$OUT/bench.log" 30
    else
      # 2. the side-by-side benchmark (gets the time left, less bench_cuda's share)
      reserve=0; [[ -x "$BUILD_DIR/bench/bench_cuda" ]] && reserve=$(( T_BENCH_CUDA + 10 ))
      [[ -x "$BUILD_DIR/bench/bench_kpp_cuda" ]] && reserve=$(( reserve + T_BENCH_KPP + 10 ))
      t=$(( $(cap 100000) - reserve ))
      iso=(); [[ "$BENCH_ISOLATE" == 1 ]] && iso=(--isolate)
      # a per-configuration guard that fits the time left (BENCH_ARGS or the script's own
      # arguments may override it: the last --timeout-per-config wins)
      tpc=$(( t / 3 )); (( tpc > 240 )) && tpc=240; (( tpc < 30 )) && tpc=30
      iso+=(--timeout-per-config "$tpc")
      notes=()
      if (( t < 30 )); then
        record bench SKIP 0 "no time left (budget ${BUDGET} s)"
      else
        say "bench: gpu_side_by_side.py ${iso[*]} ${BENCH_ARGS:-} $* (up to ${t} s)"
        echo "== python3 bench/gpu_side_by_side.py ${iso[*]} ${BENCH_ARGS:-} $*" >> "$OUT/bench.log"
        # shellcheck disable=SC2086
        PYTHONUNBUFFERED=1 timeout -k 15 "$t" python3 bench/gpu_side_by_side.py \
          --lib "$LIB" --flash-kmeans third_party_ref \
          --out-csv "$OUT/gpu_side_by_side.csv" --out-md "$OUT/BENCH_GPU.md" \
          "${iso[@]}" ${BENCH_ARGS:-} "$@" 2>&1 | tee -a "$OUT/bench.log"
        rc=$?
        bench_fail=0
        case $rc in
          0) notes+=("gpu_side_by_side: ok") ;;
          2) notes+=("gpu_side_by_side: rows with errors (see the CSV's *_error columns)"); bench_fail=1 ;;
          124|137) notes+=("gpu_side_by_side: timed out after ${t} s (the CSV holds the finished configurations)"); bench_fail=1 ;;
          *) notes+=("gpu_side_by_side: exit status $rc"); bench_fail=1 ;;
        esac
        # 3. the C benchmark, if the build has one
        # shellcheck disable=SC2086
        bench_binary bench_cuda "$T_BENCH_CUDA" ${BENCH_CUDA_ARGS:-}
        # 4. k-means++ on the GPU (docs/BENCH_KPP.md), appended to bench.log
        # shellcheck disable=SC2086
        bench_binary bench_kpp_cuda "$T_BENCH_KPP" $KPP_ARGS
        grep -q '^== .*bench_kpp_cuda' "$OUT/bench.log" && sed -n '/^== .*bench_kpp_cuda/,$p' "$OUT/bench.log" | tail -n 6
        [[ $BUILD_FAILED == 1 ]] && notes+=("the build failed: $LIB may be stale")
        note=$(IFS=';'; echo "${notes[*]}")
        record bench "$([[ $bench_fail == 0 ]] && echo PASS || echo FAIL)" $(( $(now) - t0 )) "${note//;/; }"
      fi
    fi
  fi
fi

# ------------------------------------------------------------------ largeN (opt-in)
if want largeN; then
  t0=$(now)
  t=$(cap 100000)
  if [[ ! -f "$LIB" ]]; then
    record largeN SKIP 0 "$LIB not found (build first)"
  elif (( t < 60 )); then
    record largeN SKIP 0 "no time left (budget ${BUDGET} s)"
  else
    csv_tmp="$BUILD_DIR/largeN.csv"
    rm -f "$csv_tmp"
    largen_args="${LARGEN_ARGS:---n 64M 300M}"
    say "largeN: bench_largeN.py $largen_args (up to ${t} s)"
    echo "== python3 bench/bench_largeN.py $largen_args" >> "$OUT/bench.log"
    # shellcheck disable=SC2086
    PYTHONUNBUFFERED=1 timeout -k 15 "$t" python3 bench/bench_largeN.py --lib "$LIB" \
      --flash-kmeans third_party_ref --out-csv "$csv_tmp" $largen_args 2>&1 | tee -a "$OUT/bench.log"
    rc=${PIPESTATUS[0]}
    if [[ -f "$csv_tmp" ]]; then
      if (( $(find "$OUT" -type f | wc -l) < 8 )); then mv "$csv_tmp" "$OUT/largeN.csv"; where="largeN.csv"
      else { echo "== largeN.csv"; cat "$csv_tmp"; } >> "$OUT/bench.log"; where="bench.log"; fi
    fi
    if [[ $rc == 0 ]]; then record largeN PASS $(( $(now) - t0 )) "results in ${where:-?} (targets: see the log)"
    else record largeN FAIL $(( $(now) - t0 )) "exit status $rc (bench.log)"; fi
  fi
fi

write_summary
echo
cat "$SUMMARY"
nfiles=$(find "$OUT" -type f | wc -l)
(( nfiles > 8 )) && echo "gpu-check: note: $OUT holds $nfiles files (only 8 come back from the device tool)"
exit $ANY_FAIL
