//! Links the hypervisor image with linker/el2.ld when building for the target.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed={dir}/../linker/el2.ld");
    println!("cargo:rerun-if-changed={dir}/../boot/entry.S");
    println!("cargo:rerun-if-changed={dir}/../boot/vectors.S");
    if target.ends_with("-none") || target.ends_with("-none-softfloat") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/../linker/el2.ld");
    }
}
