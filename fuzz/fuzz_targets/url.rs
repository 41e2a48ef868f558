//! Parses arbitrary strings with `moonport::proto::url::parse`. For every
//! string that parses, the URL built from its parts must build, parse again,
//! and be a fixed point: `build(parse(build(parse(s)))) == build(parse(s))`.
//! Nothing may panic.
//!
//! With `MOONPORT_FUZZ_URL_STRICT=1` it also requires that the round trip
//! keeps every part: `parse(build(parse(s))) == parse(s)` (a URL's meaning
//! survives moonport.url.build). See docs/fuzzing.md for what that finds.
//!
//! Regression check, found by fuzzing, fixed in `build` (it now writes `/.`
//! before a hostless path that starts with `//`, as the url crate does): a
//! URL without a host whose path starts with `//` (`a:/.//f`) used to be
//! built as `a://f`, where `f` is the host; with `///` the next round changed
//! again (`a:////` -> `a://` -> `a:`).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moonport::proto::url::{build, parse};

fn flag(name: &str, cell: &OnceLock<bool>) -> bool {
    *cell.get_or_init(|| std::env::var_os(name).is_some_and(|v| v == "1"))
}

fn strict() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    flag("MOONPORT_FUZZ_URL_STRICT", &ON)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(parts) = parse(s) else { return };
    let built = match build(&parts) {
        Ok(b) => b,
        Err(e) => panic!("build(parse({s:?})) failed: {e}\nparts: {parts:?}"),
    };
    let again = match parse(&built) {
        Ok(p) => p,
        Err(e) => panic!("parse(build(parse({s:?}))) = parse({built:?}) failed: {e}\nparts: {parts:?}"),
    };
    let rebuilt = match build(&again) {
        Ok(b) => b,
        Err(e) => panic!("second build of {s:?} (built {built:?}) failed: {e}\nparts: {again:?}"),
    };
    assert_eq!(rebuilt, built, "not idempotent: {s:?} -> {built:?} -> {rebuilt:?}\nparts: {parts:?}\nthen: {again:?}");
    if strict() {
        assert_eq!(again, parts, "round trip changed the parts: {s:?} -> {built:?}");
    }
});
