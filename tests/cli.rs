//! The `netmorph` command's argument handling (the demo itself runs in `.ci/run`, in release).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netmorph"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_commands_print_usage_and_fail() {
    let (code, err) = run(&["frobnicate"]);
    assert_ne!(code, 0);
    assert!(err.contains("usage: netmorph demo"), "{err}");
}

#[test]
fn bad_seed_is_a_clear_error() {
    let (code, err) = run(&["demo", "--seed", "minus-one"]);
    assert_ne!(code, 0);
    assert!(err.contains("--seed takes a non-negative integer"), "{err}");
}
