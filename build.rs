//! Generates the uniffi scaffolding from `uniffi.udl` (at the crate root,
//! hence `generate_scaffolding_for_crate`); `src/foreign.rs` includes it.

fn main() {
    println!("cargo:rerun-if-changed=uniffi.udl");
    println!("cargo:rerun-if-changed=build.rs");
    uniffi::generate_scaffolding_for_crate("uniffi.udl", "fieldreport")
        .expect("cannot generate the uniffi scaffolding from uniffi.udl");
}
