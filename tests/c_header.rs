//! The committed C header `bindings/c/fieldreport.h` must be exactly what
//! cbindgen (the pinned dev-dependency) makes of `src/ffi/` with
//! `cbindgen.toml`. Run with `FIELDREPORT_BLESS_HEADER=1` (or
//! `bindings/c/generate-header.sh`) to rewrite the header instead.

use std::path::Path;

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml"))
        .expect("cbindgen.toml cannot be read");
    // Only the C layer: other modules' items never leak into the header.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen cannot generate the header from src/ffi");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the generated header is not UTF-8")
}

#[test]
fn committed_header_matches_the_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("bindings/c/fieldreport.h");
    let generated = generate();
    if std::env::var_os("FIELDREPORT_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("cannot write bindings/c/fieldreport.h");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        let show = |text: &str| -> String {
            text.lines()
                .skip(first.saturating_sub(2))
                .take(6)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "bindings/c/fieldreport.h is out of date with src/ffi/ (first difference at line {}).\n\
             Regenerate it with bindings/c/generate-header.sh and commit it.\n\
             --- committed ---\n{}\n--- generated ---\n{}\n",
            first + 1,
            show(&committed),
            show(&generated),
        );
    }
}

#[test]
fn header_declares_the_whole_api() {
    let header = generate();
    for name in [
        "fieldreport_status",
        "FIELDREPORT_STATUS_OK = 0",
        "FIELDREPORT_STATUS_PANIC = 102",
        "fieldreport_last_error(char *buf, size_t len)",
        "fieldreport_client_open",
        "fieldreport_client_submit",
        "fieldreport_client_submit_crash",
        "fieldreport_client_submit_many",
        "fieldreport_client_flush",
        "fieldreport_client_set_callback",
        "fieldreport_client_free",
        "fieldreport_string_free",
        "fieldreport_version",
        "FIELDREPORT_POLICY_MAX_REPORTS = 1",
        "typedef void (*fieldreport_event_callback)",
    ] {
        assert!(header.contains(name), "the header lacks {name:?}");
    }
}
