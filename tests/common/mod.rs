//! Helpers the integration tests share. Each test file is its own crate and uses a part of
//! them, so the rest would be dead code there.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `netmorph` binary run with `args`.
pub fn netmorph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netmorph"))
        .args(args)
        .output()
        .unwrap()
}

/// [`netmorph`]'s exit status (-1 for a signal), stdout and stderr.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = netmorph(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh folder for test `tag` of this process.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netmorph-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `p` as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The default GPU adapter, or a skip outside CI (`CI=true` needs one).
#[cfg(feature = "gpu")]
pub fn gpu(test: &str) -> Option<netmorph::device::Gpu> {
    netmorph_gpu::testing::adapter_or_skip(test)
}
