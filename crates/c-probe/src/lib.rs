//! The layout tests' one tool: compile a C program (against the installed
//! Xen headers) and run it, for what it prints. Each crate's test says what
//! to print and what it must equal; this only compiles and runs.
#![forbid(unsafe_code)]

use std::process::Command;

/// Compiles `program` with the system's `cc` and returns what it prints.
/// Panics (these are tests) with the compiler's message when it does not build.
pub fn run(name: &str, program: &str) -> String {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (source, binary) = (dir.join(format!("{name}.c")), dir.join(name));
    std::fs::write(&source, program).unwrap();
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("cc runs");
    assert!(
        cc.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&binary).output().expect("the program runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{name} exited with {}", out.status);
    String::from_utf8(out.stdout).expect("the program prints UTF-8")
}
