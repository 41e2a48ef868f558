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
