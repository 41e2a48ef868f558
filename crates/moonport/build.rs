//! Build script: on Linux, exports the Lua C API from the `moonport` binary so
//! that Lua C modules (`.so` rocks such as lua-cjson), which the dynamic loader
//! resolves against the process, can load with `require`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=lua-api.ver");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let list = concat!(env!("CARGO_MANIFEST_DIR"), "/lua-api.ver");
        println!("cargo:rustc-link-arg-bins=-Wl,--dynamic-list={list}");
    }
}
