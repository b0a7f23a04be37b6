//! Makes sure the policy components the integration tests load (`target/policies/<name>.wasm`,
//! built from source by `scripts/build-policies.sh`) are there and newer than their sources, so
//! that `cargo test` works from a fresh clone without running a script first:
//!
//! - all there and fresh: nothing to do;
//! - missing or stale, with the toolchain of `scripts/install-toolchain.sh` installed: runs
//!   `scripts/build-policies.sh` (about two minutes the first time). If that fails, the build
//!   fails when a component is missing; when they are only stale (sources being edited), a
//!   warning shows the errors and the tests run on the last good build;
//! - missing, without that toolchain: a warning names the commands that build them, and
//!   `cfg(components_missing)` makes `tests/all` one test that prints the same and passes;
//! - stale, without the toolchain: a warning, and the tests run on the components there.
//!
//! Two variables change this:
//! - `SWITCHYARD_SKIP_GUEST_BUILD=1`: never run the script; use what `target/policies` holds
//!   (the tests are skipped as above if something is missing);
//! - `SWITCHYARD_FORCE_COMPONENTS_MISSING=1`: act as if the components were missing and the
//!   toolchain absent, to check that path (`cargo test -p switchyard-tests --test all` then runs
//!   only `policy_components_are_missing`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

const MISSING: &str = "policy components are missing: run scripts/install-toolchain.sh and \
                       scripts/build-policies.sh (the integration tests that need them are skipped)";

/// Sources of the Rust guests: the script rebuilds all of them on every run.
const RUST_SOURCES: &[&str] = &[
    "policies/flash-first-rule",
    "policies/flash-first",
    "policies/cache-sticky",
    "policies/adaptive",
    "tests/guests",
    "sdk/src",
    "sdk/Cargo.toml",
    "wit",
    "scripts/build-policies.sh",
];
/// The Python and JavaScript builds, each rebuilt by the script only when these changed (the
/// language SDKs, where there are any: a path that does not exist is left out).
const PY_SOURCES: &[&str] = &["policies/flash-first-py", "sdk/python", "wit"];
const JS_SOURCES: &[&str] = &[
    "policies/flash-first-js/flash_first.js",
    "policies/flash-first-js/build.mjs",
    "sdk/js",
    "wit",
];

/// Directories never looked into (installed packages and caches, not sources).
const SKIPPED_DIRS: &[&str] = &["node_modules", "__pycache__", "target"];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rust,
    Python,
    JavaScript,
}

struct Component {
    name: String,
    kind: Kind,
    sources: &'static [&'static str],
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    // (The whole SDK directory: the Rust SDK, and the other languages' beside it. Every path
    // here must exist: Cargo reruns a build script on every build while one is missing.)
    for path in [
        "policies",
        "tests/guests",
        "sdk",
        "wit",
        "scripts/build-policies.sh",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(path).display());
    }
    println!("cargo::rerun-if-env-changed=SWITCHYARD_SKIP_GUEST_BUILD");
    println!("cargo::rerun-if-env-changed=SWITCHYARD_FORCE_COMPONENTS_MISSING");
    println!("cargo::rustc-check-cfg=cfg(components_missing)");

    let out = root.join("target/policies");
    let components = components(&root);
    let forced = flag("SWITCHYARD_FORCE_COMPONENTS_MISSING");
    let needing_build: Vec<&Component> = components
        .iter()
        .filter(|c| forced || !is_fresh(&root, &out, c))
        .collect();
    if needing_build.is_empty() {
        return;
    }
    let missing = forced
        || needing_build
            .iter()
            .any(|c| !out.join(format!("{}.wasm", c.name)).exists());
    let skip = flag("SWITCHYARD_SKIP_GUEST_BUILD");
    let buildable = !forced && !skip && toolchain_present(&root, &needing_build);
    let names = needing_build
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if buildable {
        let started = Instant::now();
        match build(&root) {
            // Not a warning: Cargo would repeat it on every build until this script runs again.
            Ok(()) => eprintln!(
                "built the policy components missing or older than their sources ({names}) with \
                 scripts/build-policies.sh in {:.0} s",
                started.elapsed().as_secs_f64()
            ),
            // Nothing to test with: fail, with the script's output above.
            Err(errors) if missing => panic!(
                "scripts/build-policies.sh failed building the policy components the integration \
                 tests need ({names}); its output is above:\n{errors}"
            ),
            // Sources being edited: the tests can still run on the last good build.
            Err(errors) => {
                println!(
                    "cargo::warning=scripts/build-policies.sh failed rebuilding policy components \
                     older than their sources ({names}); the tests run on the components built \
                     before. Its errors:"
                );
                for line in errors.lines() {
                    println!("cargo::warning=  {line}");
                }
            }
        }
        return;
    }
    if missing {
        println!("cargo::warning={MISSING}");
        println!("cargo::rustc-cfg=components_missing");
        // Once they are built by hand, the next build notices and runs the tests again.
        std::fs::create_dir_all(&out).expect("create target/policies");
        println!("cargo::rerun-if-changed={}", out.display());
    } else {
        let why = if skip {
            "SWITCHYARD_SKIP_GUEST_BUILD is set"
        } else {
            "the toolchain of scripts/install-toolchain.sh is not installed"
        };
        println!(
            "cargo::warning=policy components older than their sources ({names}) are not rebuilt \
             ({why}): run scripts/build-policies.sh; the tests run on the components in \
             target/policies"
        );
    }
}

/// Every component the tests load, as `scripts/build-policies.sh` builds them: the Rust guests
/// (the reference policies flash-first, cache-sticky and adaptive, and each crate in
/// tests/guests), then the Python and JavaScript builds.
fn components(root: &Path) -> Vec<Component> {
    let mut crates: Vec<PathBuf> = ["flash-first", "cache-sticky", "adaptive"]
        .iter()
        .map(|name| root.join("policies").join(name))
        .collect();
    let mut guests: Vec<PathBuf> = std::fs::read_dir(root.join("tests/guests"))
        .expect("read tests/guests")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    guests.sort();
    crates.extend(guests);
    let mut components: Vec<Component> = crates
        .iter()
        .map(|dir| Component {
            name: crate_name(&dir.join("Cargo.toml")),
            kind: Kind::Rust,
            sources: RUST_SOURCES,
        })
        .collect();
    components.push(Component {
        name: "flash-first-py".into(),
        kind: Kind::Python,
        sources: PY_SOURCES,
    });
    components.push(Component {
        name: "flash-first-js".into(),
        kind: Kind::JavaScript,
        sources: JS_SOURCES,
    });
    components
}

/// The `name = "..."` of a manifest's package (its first `name` line, as the script reads it).
fn crate_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("read {}: {e}", manifest.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no package name in {}", manifest.display()))
        .to_owned()
}

fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The component exists and is newer than every file it is built from.
fn is_fresh(root: &Path, out: &Path, c: &Component) -> bool {
    let Some(built) = modified(&out.join(format!("{}.wasm", c.name))) else {
        return false;
    };
    c.sources
        .iter()
        .filter_map(|s| newest(&root.join(s)))
        .all(|source| source <= built)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the files under `path` (or of `path`, a file).
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_none_or(|n| !SKIPPED_DIRS.contains(&n))
        })
        .filter_map(|e| newest(&e.path()))
        .max()
}

/// What `scripts/build-policies.sh` needs to rebuild `needed`: a wasm32 Rust toolchain (rustup's
/// target, or Debian's rustc-web with lld-22) for every run, and componentize-py and
/// componentize-js when it has to rebuild the Python or JavaScript component.
fn toolchain_present(root: &Path, needed: &[&Component]) -> bool {
    let rustup_wasm = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim() == "wasm32-unknown-unknown")
        });
    let debian_wasm =
        Path::new("/usr/bin/cargo").exists() && Path::new("/usr/lib/llvm-22/bin/wasm-ld").exists();
    let needs = |kind| needed.iter().any(|c| c.kind == kind);
    (rustup_wasm || debian_wasm)
        && (!needs(Kind::Python) || root.join("target/pytools/bin/componentize-py").exists())
        && (!needs(Kind::JavaScript)
            || root
                .join("policies/flash-first-js/node_modules/@bytecodealliance/componentize-js")
                .is_dir())
}

/// Runs `scripts/build-policies.sh`, in an environment without what this Cargo set for its own
/// build script: the script's builds choose their compiler, flags and target directories
/// themselves (`CARGO_ENCODED_RUSTFLAGS`, left in, would override the path remapping that makes
/// the components byte-reproducible). The jobserver (`CARGO_MAKEFLAGS`) is kept, so the nested
/// builds share this build's CPU allowance. On failure, returns the lines of its output that say
/// why (the whole output is on this build script's stderr, which Cargo shows when it fails).
fn build(root: &Path) -> Result<(), String> {
    let script = root.join("scripts/build-policies.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script).current_dir(root);
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_CFG_",
            "CARGO_FEATURE_",
            "CARGO_MANIFEST_",
            "DEP_",
        ]
        .iter()
        .any(|p| key.starts_with(p))
            || [
                "CARGO",
                "CARGO_ENCODED_RUSTFLAGS",
                "CARGO_ENCODED_RUSTDOCFLAGS",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_DIR",
                "CARGO_BUILD_TARGET",
                "CARGO_BUILD_RUSTFLAGS",
                "OUT_DIR",
                "TARGET",
                "HOST",
                "NUM_JOBS",
                "OPT_LEVEL",
                "DEBUG",
                "PROFILE",
                "RUSTC",
                "RUSTDOC",
                "RUSTC_LINKER",
                "RUSTC_WRAPPER",
                "RUSTC_WORKSPACE_WRAPPER",
                "RUSTFLAGS",
                "RUSTDOCFLAGS",
            ]
            .contains(&key);
        if set_by_cargo {
            cmd.env_remove(key);
        }
    }
    // Not this build script's stdout, which Cargo reads as `cargo::` directives.
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all(&output.stdout);
    let _ = stderr.write_all(&output.stderr);
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let mut errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("error") || l.trim_start().starts_with("-->"))
        .collect();
    if errors.len() > 20 {
        errors.truncate(20);
        errors.push("...");
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let mut why = if errors.is_empty() {
        last.to_owned()
    } else {
        errors.join("\n")
    };
    why += &format!("\n({}: {})", script.display(), output.status);
    Err(why)
}
