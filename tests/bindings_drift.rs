//! Fails when the committed Swift, Kotlin and Python bindings differ from
//! what `uniffi.udl`, `uniffi.toml` and the pinned uniffi generate now.
//!
//! Needs the bindgen binary, so it only builds with the feature:
//!
//! ```text
//! cargo test --features uniffi-cli --test bindings_drift
//! ```
//!
//! It runs `bindings/generate.sh OUT` (the one place that knows where each
//! generated file goes) with the uniffi-bindgen and the cdylib that this
//! `cargo test` built, then compares every file written under OUT with the
//! committed file at the same path.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cdylib_file_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "libfieldreport.dylib"
    } else if cfg!(target_os = "windows") {
        "fieldreport.dll"
    } else {
        "libfieldreport.so"
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The first line where two texts differ, for the failure message.
fn first_difference(committed: &str, fresh: &str) -> String {
    let mut c = committed.lines();
    let mut f = fresh.lines();
    let mut n = 1;
    loop {
        match (c.next(), f.next()) {
            (Some(a), Some(b)) if a == b => n += 1,
            (None, None) => return "they differ only in line endings".into(),
            (a, b) => {
                return format!(
                    "line {n}:\n      committed: {}\n      generated: {}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                )
            }
        }
    }
}

#[test]
fn committed_bindings_match_a_fresh_generation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bindgen = PathBuf::from(env!("CARGO_BIN_EXE_uniffi-bindgen"));
    let lib = bindgen
        .parent()
        .expect("the bindgen binary has a directory")
        .join(cdylib_file_name());
    assert!(
        lib.is_file(),
        "{} was not built next to {}: run `cargo build --features uniffi-cli --lib --bin uniffi-bindgen` first (tests/run_all.sh does)",
        lib.display(),
        bindgen.display()
    );

    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new("bash")
        .arg(root.join("bindings/generate.sh"))
        .arg(out.path())
        .env("UNIFFI_BINDGEN", &bindgen)
        .env("FIELDREPORT_CDYLIB", &lib)
        .current_dir(root)
        .output()
        .expect("cannot run bash bindings/generate.sh");
    assert!(
        run.status.success(),
        "bindings/generate.sh failed ({}):\n{}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let generated = files_under(out.path());
    assert!(generated.len() >= 5, "generate.sh wrote only {generated:?}");
    let mut problems = Vec::new();
    for fresh_path in &generated {
        let rel = fresh_path.strip_prefix(out.path()).unwrap();
        let committed_path = root.join(rel);
        let fresh = fs::read(fresh_path).unwrap();
        match fs::read(&committed_path) {
            Err(e) => problems.push(format!("  {}: not committed ({e})", rel.display())),
            Ok(committed) if committed != fresh => problems.push(format!(
                "  {}: differs at {}",
                rel.display(),
                first_difference(
                    &String::from_utf8_lossy(&committed),
                    &String::from_utf8_lossy(&fresh)
                )
            )),
            Ok(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "the committed uniffi bindings are out of date:\n{}\n\
         Regenerate them with `bindings/generate.sh` and commit the result.",
        problems.join("\n")
    );
}
