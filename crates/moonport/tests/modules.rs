//! Where `require` finds Lua modules: next to the script, in `--lua-path`
//! (directories or `?` templates) and in `LUA_PATH`, the variable LuaRocks'
//! `luarocks path` sets for its trees.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Moonport;

fn module(dir: &Path, rel: &str, where_: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create the module's folder");
    std::fs::write(path, format!("return {{ where = {where_:?} }}\n")).expect("write the module");
}

#[test]
fn require_searches_script_dir_lua_path_and_lua_path_env() {
    let root = std::env::temp_dir().join(format!("moonport-modules-{}", std::process::id()));
    let (dir, templ, env) = (root.join("dir"), root.join("templ"), root.join("env"));
    module(&dir, "from_dir.lua", "--lua-path directory");
    module(&dir, "pkg/init.lua", "--lua-path directory, pkg/init.lua");
    module(&templ, "from_template.mod.lua", "--lua-path template");
    module(&env, "from_env.lua", "LUA_PATH");
    let template = format!("{}/?.mod.lua", templ.display());
    let out = Moonport::new("require_test.lua")
        .workers(1)
        .option("--lua-path")
        .option(&dir.display().to_string())
        .option("--lua-path")
        .option(&template)
        .env("LUA_PATH", format!("{}/?.lua;;", env.display()))
        .run(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("3 passed, 0 failed"), "{}", out.stdout);
}

#[cfg(target_os = "linux")]
/// The Lua version moonport was built with, as LuaRocks names its trees.
fn lua_version() -> &'static str {
    if cfg!(feature = "lua54") { "5.4" } else { "5.1" }
}

#[cfg(target_os = "linux")]
/// Installs the fixture rock into a fresh tree with `luarocks make` (no
/// network: the rock's source is in tests/lua/rocks) and returns the
/// `LUA_PATH` / `LUA_CPATH` that `luarocks path` prints for that tree.
fn luarocks_tree(tree: &Path) -> Vec<(String, String)> {
    let rock = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua/rocks/greet");
    let luarocks = |args: &[&str]| {
        let out = std::process::Command::new("luarocks")
            .args(["--lua-version", lua_version(), "--tree"])
            .arg(tree)
            .args(args)
            .current_dir(&rock)
            .output()
            .expect("run luarocks (scripts/setup installs it)");
        assert!(out.status.success(), "luarocks {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    luarocks(&["make", "greet-1.0-1.rockspec"]);
    luarocks(&["path"])
        .lines()
        .filter_map(|line| {
            let (key, value) = line.strip_prefix("export ")?.split_once('=')?;
            let value = value.trim_matches('\'');
            (key == "LUA_PATH" || key == "LUA_CPATH").then(|| (key.to_string(), value.to_string()))
        })
        .collect()
}

// The binary exports the Lua C API (build.rs) on Linux only; on Windows a C
// module DLL links against lua51.dll, which moonport.exe is not.
#[cfg(target_os = "linux")]
#[test]
fn rocks_and_c_modules_load_from_a_luarocks_tree() {
    let tree = std::env::temp_dir().join(format!("moonport-rocks-{}", std::process::id()));
    let mut env = luarocks_tree(&tree);
    assert_eq!(env.len(), 2, "luarocks path printed {env:?}");
    // Debian's lua-cjson (scripts/setup) sits in the system's C module folder.
    let system = format!("/usr/lib/{}-linux-gnu/lua/{}/?.so", std::env::consts::ARCH, lua_version());
    for (key, value) in &mut env {
        if key == "LUA_CPATH" {
            *value = format!("{system};{value}");
        }
    }
    let out = env
        .into_iter()
        .fold(Moonport::new("rocks_test.lua").workers(2), |m, (key, value)| m.env(&key, value))
        .run(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(&tree);
    assert_eq!(out.code(), Some(0), "--- stdout ---\n{}\n--- stderr ---\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("3 passed, 0 failed"), "{}", out.stdout);
}
