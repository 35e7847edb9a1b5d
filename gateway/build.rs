//! Rebuilds the gateway when the web app's build output changes, so the files
//! embedded by rust-embed (`src/web.rs`) are never stale.
//!
//! Cargo watches a directory recursively. A watched path that does not exist
//! makes every build rerun this script (and recompile the crate), so while
//! `web/dist` is missing we watch `web/` instead: `npm run build` creating
//! `web/dist` changes it and triggers the rebuild that embeds the app.
use std::path::Path;

fn main() {
    let dist = Path::new("../web/dist");
    if dist.is_dir() || !Path::new("../web").is_dir() {
        println!("cargo:rerun-if-changed=../web/dist");
    } else {
        println!("cargo:rerun-if-changed=../web");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
