//! Links the Cortex-M images: each binary gets its own memory.x (from `memory/<bin>.x`, put on
//! a search path only that binary's link sees), cortex-m-rt's link.x and defmt's defmt.x. For
//! the embedded target only: host builds of the library need none of it.
use std::path::PathBuf;

const IMAGES: [&str; 3] = ["mps2-an386", "stm32f407", "nucleo-f439zi"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=memory");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for bin in IMAGES {
        let dir = out.join(bin);
        std::fs::create_dir_all(&dir).expect("OUT_DIR is writable");
        std::fs::copy(format!("memory/{bin}.x"), dir.join("memory.x")).expect("memory/<bin>.x exists");
        println!("cargo:rustc-link-arg-bin={bin}=-L{}", dir.display());
        println!("cargo:rustc-link-arg-bin={bin}=-Tlink.x");
        println!("cargo:rustc-link-arg-bin={bin}=-Tdefmt.x");
    }
}
