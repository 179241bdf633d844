#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input with libFuzzer (cargo fuzz): each target runs
# for SECONDS (default 60) from a seed corpus, then a table of executions and crashes
# is printed, and every known finding in fuzz/regressions/ is replayed. Exits non-zero
# if any target crashed, hung or ran out of memory (the reproducer is left under
# fuzz/artifacts/<target>/) or a known finding still fails. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   scripts/fuzz.sh 10            # the CI smoke: a few minutes, most of it the build
#   scripts/fuzz.sh 600 archive   # one target for longer
#
# FUZZ_FRESH=1 starts from the seeds alone instead of the corpus kept by earlier runs.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL_TARGETS=(template taskfile build_args dockerfile dockerignore archive)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
case "$SECONDS_PER_TARGET" in
  '' | *[!0-9]*) echo "fuzz: SECONDS_PER_TARGET must be a whole number, not '$SECONDS_PER_TARGET'" >&2; exit 2 ;;
esac
for t in "${TARGETS[@]}"; do
  case " ${ALL_TARGETS[*]} " in
    *" $t "*) ;;
    *) echo "fuzz: no target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
SHARED_ACB="$ROOT/../shared/conformance/acb"
cd "$FUZZ"

# cargo fuzz passes -Z flags (-Zsanitizer=address, sanitizer coverage) that only a
# nightly rustc accepts; this machine has stable only, and RUSTC_BOOTSTRAP=1 lets
# stable rustc take them.
export RUSTC_BOOTSTRAP=1
# The fuzz project is its own workspace with its own target dir (fuzz/target).
unset CARGO_TARGET_DIR
BUILD_FLAGS=(--fuzz-dir "$FUZZ" --release --debug-assertions --sanitizer address)

# --- what it needs -----------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io" >&2
  cargo install cargo-fuzz --version '^0.13' --locked
fi
command -v python3 >/dev/null || { echo "fuzz: python3 is needed to write the archive seeds" >&2; exit 1; }

# --- seed corpora --------------------------------------------------------------------
[ "${FUZZ_FRESH:-}" = 1 ] && rm -rf "$FUZZ/corpus"
# Copies files into corpus/<target>/, named after their path so reruns don't duplicate.
seed() {
  local target="$1"
  shift
  mkdir -p "corpus/$target"
  local f name
  for f in "$@"; do
    [ -f "$f" ] || continue
    name="seed-$(printf '%s' "${f#"$ROOT"/}" | tr -c 'A-Za-z0-9._-' '_')"
    cp "$f" "corpus/$target/$name"
  done
}
# Every file under the given directories whose name matches a find(1) -name pattern.
files() {
  local pattern="$1"
  shift
  local d
  for d in "$@"; do [ -d "$d" ] && find "$d" -type f -name "$pattern"; done | LC_ALL=C sort
}

mapfile -t YAML < <(files '*.yaml' "$ROOT/examples" "$SHARED_ACB")
mapfile -t DOCKERFILES < <(files 'Dockerfile*' "$ROOT/examples" "$SHARED_ACB")
mapfile -t DOCKERIGNORES < <(files '.dockerignore' "$ROOT/examples" "$SHARED_ACB")
for t in template taskfile build_args dockerfile dockerignore; do seed "$t" seeds/"$t"/*; done
seed template "${YAML[@]}"
seed taskfile "${YAML[@]}"
seed dockerfile "${DOCKERFILES[@]}"
seed dockerignore "${DOCKERIGNORES[@]}"
# A task file beside a values.yaml is also fed with it, after a NUL (see fuzz_targets/taskfile.rs).
for v in "${YAML[@]}"; do
  [ "$(basename "$v")" = values.yaml ] || continue
  for task in "$(dirname "$v")"/*.yaml; do
    [ "$task" = "$v" ] && continue
    name="seed-with-values-$(printf '%s' "${task#"$ROOT"/}" | tr -c 'A-Za-z0-9._-' '_')"
    { cat "$task"; printf '\0'; cat "$v"; } >"corpus/taskfile/$name"
  done
done
# The arguments of every `build:` step in the task files.
i=0
for y in "${YAML[@]}"; do
  while IFS= read -r args; do
    i=$((i + 1))
    printf '%s' "$args" >"corpus/build_args/seed-step-$i"
  done < <(sed -n 's/^[ -]*build: *//p' "$y")
done
mkdir -p corpus/archive
python3 make_archive_seeds.py corpus/archive
# Real contexts, as the CLI would upload them (flag byte 0: fed as they are).
for d in "$ROOT"/examples/*/; do
  name="seed-context-$(basename "$d").tgz"
  { printf '\0'; tar -C "$d" -czf - . 2>/dev/null; } >"corpus/archive/$name"
done

# --- build ---------------------------------------------------------------------------
# What is built, for the figures: the commit, and whether the fuzzed crates had changes.
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
fuzzed=(crates/slipway-template crates/slipway-taskfile crates/slipway-reference crates/slipway-dockerfile crates/slipway-context)
[ -n "$(git -C "$ROOT" status --porcelain -- "${fuzzed[@]}" 2>/dev/null)" ] && commit="$commit+uncommitted"
echo "fuzz: building ${#TARGETS[@]} target(s) (cargo fuzz, address sanitizer, debug assertions)" >&2
if [ ${#TARGETS[@]} -eq ${#ALL_TARGETS[@]} ]; then
  cargo fuzz build "${BUILD_FLAGS[@]}"
else
  for t in "${TARGETS[@]}"; do cargo fuzz build "${BUILD_FLAGS[@]}" "$t"; done
fi

# --- run -----------------------------------------------------------------------------
BIN="$FUZZ/target/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p logs
failed=0
rows=()
for t in "${TARGETS[@]}"; do
  mkdir -p "artifacts/$t"
  before="$(find "artifacts/$t" -type f | LC_ALL=C sort)"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=(-dict="dicts/$t.dict")
  log="logs/$t.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s ($log)" >&2
  started=$(date +%s)
  set +e
  # The binaries built above, run directly: cargo fuzz run would rebuild whenever a
  # crate changed since, and count its build in the target's time.
  "$BIN/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 "${dict[@]}" "corpus/$t" >"$log" 2>&1
  status=$?
  set -e
  took=$(($(date +%s) - started))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  [ -n "$execs" ] || execs="$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')"
  [ -n "$execs" ] || execs="?"
  new="$(comm -13 <(printf '%s\n' "$before") <(find "artifacts/$t" -type f | LC_ALL=C sort) | sed '/^$/d')"
  # libFuzzer names a reproducer for what it found: crash-, timeout-, oom- or leak-.
  crashes=$(printf '%s' "$new" | grep -cE '/(crash|timeout|oom|leak)-[^/]*$' || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  note=""
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    if [ "$crashes" -eq 0 ]; then
      crashes="?"
      note="exit $status, no artifact: see $log"
    else
      note="$(printf '%s' "$new" | sed "s|^|fuzz/|" | paste -sd' ')"
    fi
  fi
  rows+=("$(printf '%-13s %8s %12s %9s %8s %8s  %s' "$t" "$took" "$execs" \
    "$([ "$execs" != "?" ] && [ "$took" -gt 0 ] && echo $((execs / took)) || echo -)" "$corpus" "$crashes" "$note")")
done

# --- known findings ------------------------------------------------------------------
# fuzz/regressions/<target>/ holds every input that once crashed, hung or ran out of
# memory (minimised): each is replayed under the same limits, so a fix is confirmed and
# a regression caught, while the fuzzing above stays free to look for new findings.
regressions=()
for t in "${TARGETS[@]}"; do
  for f in regressions/"$t"/*; do
    [ -f "$f" ] || continue
    if "$BIN/$t" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="logs/replay-$t-" "$f" >"logs/replay.log" 2>&1; then
      regressions+=("$(printf '  ok     fuzz/%s' "$f")")
    else
      failed=1
      why="$(grep -oE 'ERROR: libFuzzer: [a-z0-9 -]+|panicked at [^ ]+' logs/replay.log | head -n 1 | sed 's/[ :]*$//')"
      cp logs/replay.log "logs/replay-$t-$(basename "$f").log"
      regressions+=("$(printf '  FAILS  fuzz/%s (%s; logs/replay-%s-%s.log)' "$f" "${why:-exit non-zero}" "$t" "$(basename "$f")")")
    fi
  done
done

echo
echo "fuzz results, $(date -u +%Y-%m-%dT%H:%MZ), ${SECONDS_PER_TARGET}s per target, crates at $commit, $(rustc --version | cut -d' ' -f1-2), cargo-fuzz $(cargo fuzz --version | awk '{print $2}')"
printf '%-13s %8s %12s %9s %8s %8s  %s\n' target seconds executions execs/s corpus crashes ""
printf '%s\n' "${rows[@]}"
if [ ${#regressions[@]} -gt 0 ]; then
  echo "known findings replayed (fuzz/regressions):"
  printf '%s\n' "${regressions[@]}"
fi
if [ "$failed" -ne 0 ]; then
  echo "fuzz: a target failed; reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a <target> artifacts/<target>/<file>; minimise with cargo fuzz tmin -O -a <target> <file>" >&2
  exit 1
fi
