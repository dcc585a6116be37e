//! The project's own `uniffi-bindgen`, at exactly the uniffi version the
//! library links. Built only with `--features uniffi-cli`; used by
//! `bindings/generate.sh` and `tests/bindings_drift.rs`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
