#!/usr/bin/env bash
# Builds every WebAssembly policy component from source: the Rust policies in policies/ (flash-first,
# cache-sticky and adaptive, the last two on the plain library policies/flash-first-rule) and the
# deliberately broken test guests in tests/guests/, and the Python (componentize-py) and
# JavaScript (componentize-js) builds of flash-first. Output: target/policies/<name>.wasm.
#
#   scripts/build-policies.sh            build all
#   scripts/build-policies.sh --check    also verify that the reference component embedded in the
#                                        host (host/gateway/assets/flash-first.wasm) is byte-identical
#                                        to the one just built from source
#   scripts/build-policies.sh --update   copy the freshly built reference component into the host
#
# `cargo test -p switchyard-tests` runs it when a component is missing or older than its sources
# (tests/build.rs). Needs the toolchain from scripts/install-toolchain.sh. Builds are
# reproducible: paths are remapped so the bytes do not depend on where the repository or the
# cargo home live.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
MODE=${1:-build}
OUT="$ROOT/target/policies"
WASM_TARGET_DIR="$ROOT/target/wasm"
mkdir -p "$OUT"
log() { echo "[build-policies] $*" >&2; }

# One build at a time: tests/build.rs runs this script too, whenever a Cargo build of the tests
# finds a component missing or stale, and two runs would write the same files at once. (On a
# descriptor bash picks, so as not to replace an inherited one, such as a jobserver's.)
exec {LOCK_FD}>"$OUT/.lock"
if ! flock -n "$LOCK_FD"; then
  log "another build of the components is running; waiting for it"
  flock "$LOCK_FD"
fi

# Rust guest crates: name -> crate directory.
GUESTS=(policies/flash-first policies/cache-sticky policies/adaptive)
for d in tests/guests/*/; do GUESTS+=("${d%/}"); done

CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
REMAP="--remap-path-prefix=$ROOT=/switchyard --remap-path-prefix=$CARGO_HOME_DIR=/cargo"
packages=()
for g in "${GUESTS[@]}"; do
  packages+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$g/Cargo.toml" | head -1)")
done

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "using rustup's wasm32-unknown-unknown target"
  RUSTFLAGS="$REMAP" cargo build --locked --profile wasm --target wasm32-unknown-unknown \
    --target-dir "$WASM_TARGET_DIR" "${packages[@]}"
else
  [[ -x /usr/bin/cargo && -x /usr/lib/llvm-22/bin/wasm-ld ]] \
    || { echo "missing the Debian wasm toolchain: run scripts/install-toolchain.sh" >&2; exit 1; }
  log "using Debian's rustc $(/usr/bin/rustc --version | cut -d' ' -f2) with -Zbuild-std"
  # rustup's cargo/rustc proxies shadow Debian's on PATH: name Debian's explicitly, or the build
  # mixes rustc 1.95 with the 1.96 std source and fails.
  env RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 RUSTFLAGS="$REMAP" \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=/usr/lib/llvm-22/bin/wasm-ld \
    /usr/bin/cargo build --locked --profile wasm --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --target-dir "$WASM_TARGET_DIR" "${packages[@]}"
fi

# A target directory of its own: run from tests/build.rs, the Cargo that runs that build script
# holds the lock on the main one.
cargo build --locked -q -p xtask --target-dir "$ROOT/target/xtask"
for g in "${GUESTS[@]}"; do
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$g/Cargo.toml" | head -1)
  module="$WASM_TARGET_DIR/wasm32-unknown-unknown/wasm/${crate//-/_}.wasm"
  "$ROOT/target/xtask/debug/xtask" componentize "$module" "$OUT/$crate.wasm"
done

# Other languages. Each is rebuilt only when its sources or the contract changed.
fresh() { # fresh OUT INPUT...: OUT exists and is newer than every input
  local out=$1; shift
  [[ -f "$out" ]] || return 1
  [[ -z "$(find "$@" -newer "$out" -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' 2>/dev/null)" ]]
}
PY_OUT="$OUT/flash-first-py.wasm"
if fresh "$PY_OUT" policies/flash-first-py sdk/python wit; then
  log "flash-first-py.wasm is up to date"
else
  [[ -x "$ROOT/target/pytools/bin/componentize-py" ]] || { echo "componentize-py missing: run scripts/install-toolchain.sh" >&2; exit 1; }
  # --stub-wasi: the component imports no WASI at all, only the switchyard:policy world.
  # -p sdk/python bundles the SDK module (switchyard_policy) with the policy.
  "$ROOT/target/pytools/bin/componentize-py" -d wit -w policy componentize --stub-wasi \
    -p policies/flash-first-py -p sdk/python flash_first -o "$PY_OUT"
  log "componentized policies/flash-first-py -> $PY_OUT ($(stat -c %s "$PY_OUT") bytes)"
fi
JS_OUT="$OUT/flash-first-js.wasm"
if fresh "$JS_OUT" policies/flash-first-js/flash_first.js policies/flash-first-js/build.mjs sdk/js wit; then
  log "flash-first-js.wasm is up to date"
else
  [[ -d policies/flash-first-js/node_modules/@bytecodealliance/componentize-js ]] \
    || { echo "componentize-js missing: run scripts/install-toolchain.sh" >&2; exit 1; }
  (cd policies/flash-first-js && node build.mjs "$JS_OUT")
fi

EMBEDDED="$ROOT/host/gateway/assets/flash-first.wasm"
case "$MODE" in
  --check)
    if cmp -s "$OUT/flash-first.wasm" "$EMBEDDED"; then
      log "embedded flash-first.wasm is byte-identical to the source build ($(sha256sum < "$EMBEDDED" | cut -c1-16))"
    else
      echo "host/gateway/assets/flash-first.wasm differs from the component built from policies/flash-first;" >&2
      echo "run scripts/build-policies.sh --update and commit the result" >&2
      exit 1
    fi ;;
  --update)
    mkdir -p "$(dirname "$EMBEDDED")"
    cp "$OUT/flash-first.wasm" "$EMBEDDED"
    log "updated $EMBEDDED" ;;
  build) ;;
  *) echo "unknown option $MODE" >&2; exit 2 ;;
esac
log "components in $OUT: $(ls "$OUT" | tr '\n' ' ')"
