//! The layout tests' tools. `layout-facts.c` prints every struct size, field
//! offset and constant the crates rely on, for the Xen headers it is
//! compiled against; `facts/xen-4.N.txt` holds what it printed for each
//! supported release (4.17 and 4.20 from Debian's libxen-dev, the others
//! from upstream's release tags: `scripts/xen-layout-facts.sh`). Each
//! crate's layout test compares its Rust definitions with those files, and
//! `tests/headers.rs` compiles the program against real headers and
//! compares what it prints with them.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `program` with the system's `cc` (against `include_dirs`
/// before the system's headers) and returns what it prints. Panics (these
/// are tests) with the compiler's message when it does not build.
pub fn run_with(name: &str, program: &str, include_dirs: &[&Path]) -> String {
    // One directory per call: tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{name}-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (source, binary) = (dir.join(format!("{name}.c")), dir.join(name));
    std::fs::write(&source, program).unwrap();
    let mut cc = Command::new("cc");
    for include in include_dirs {
        cc.arg("-I").arg(include);
    }
    let cc = cc
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

/// [`run_with`] against the installed headers only.
pub fn run(name: &str, program: &str) -> String {
    run_with(name, program, &[])
}

/// The layout facts of the headers in `include_dirs` (the system's when empty).
pub fn measure(include_dirs: &[&Path]) -> Facts {
    let program = include_str!("../layout-facts.c");
    Facts::parse(&run_with("layout-facts", program, include_dirs))
}

/// Where the committed facts of release `4.minor` are.
pub fn committed_path(minor: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("facts/xen-4.{minor}.txt"))
}

/// The committed facts of release `4.minor`.
pub fn committed(minor: u32) -> Facts {
    let path = committed_path(minor);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Facts::parse(&text)
}

/// Layout facts by key (`size S`, `field S.F`, `const C`), each with its
/// numbers as printed (`"68"`, `"52 4"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts(pub BTreeMap<String, String>);

impl Facts {
    /// Lines of `kind name numbers...`; `#` starts a comment line.
    pub fn parse(text: &str) -> Facts {
        let mut map = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (kind, name, numbers) = (
                parts.next().unwrap(),
                parts
                    .next()
                    .unwrap_or_else(|| panic!("no name in {line:?}")),
                parts
                    .next()
                    .unwrap_or_else(|| panic!("no numbers in {line:?}")),
            );
            map.insert(format!("{kind} {name}"), numbers.to_string());
        }
        Facts(map)
    }

    /// The facts about the structs and constants `owned` names (by struct
    /// or constant name), for one crate's comparison.
    pub fn about(&self, owned: &[&str]) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter(|(key, _)| {
                let name = key.split_once(' ').map_or("", |(_, n)| n);
                let subject = name.split_once('.').map_or(name, |(s, _)| s);
                owned.contains(&subject)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// A constant's value.
    pub fn constant(&self, name: &str) -> Option<i64> {
        self.0.get(&format!("const {name}"))?.parse().ok()
    }
}

/// One crate's Rust-side facts, built up in the committed files' form.
#[derive(Default)]
pub struct RustFacts(pub BTreeMap<String, String>);

impl RustFacts {
    pub fn size(&mut self, subject: &str, bytes: usize) {
        self.0.insert(format!("size {subject}"), bytes.to_string());
    }

    pub fn field(&mut self, subject: &str, field: &str, offset: usize, bytes: usize) {
        self.0.insert(
            format!("field {subject}.{field}"),
            format!("{offset} {bytes}"),
        );
    }

    pub fn constant(&mut self, name: &str, value: i64) {
        self.0.insert(format!("const {name}"), value.to_string());
    }
}

/// Panics, listing every difference, unless `rust` says what `facts` say
/// about the subjects `owned` names, no more and no less.
pub fn assert_matches(release: &str, facts: &Facts, owned: &[&str], rust: &RustFacts) {
    let expected = facts.about(owned);
    let mut differences = Vec::new();
    for (key, c) in &expected {
        match rust.0.get(key) {
            Some(r) if r == c => {}
            Some(r) => differences.push(format!("{key}: the headers say {c}, Rust says {r}")),
            None => differences.push(format!("{key}: the headers say {c}, Rust has nothing")),
        }
    }
    for (key, r) in &rust.0 {
        if !expected.contains_key(key) {
            differences.push(format!("{key}: Rust says {r}, the headers have nothing"));
        }
    }
    assert!(
        differences.is_empty(),
        "Xen {release}: the Rust layouts differ from the headers':\n  {}",
        differences.join("\n  ")
    );
}

/// Whether a Debian package a test needs is installed (`file` is one of its
/// files). Missing, the test is skipped with a line on stderr naming the
/// package and `npm run setup:system`, so `npm test` runs for a contributor
/// who is not root; with `XDB_REQUIRE_SYSTEM_PACKAGES=1` (CI sets it) a
/// missing package fails the test instead, so nothing is skipped there.
pub fn system_package(file: &str, package: &str) -> bool {
    if Path::new(file).exists() {
        return true;
    }
    let why = format!("{file} is missing: install Debian's {package} (npm run setup:system)");
    let required = std::env::var_os("XDB_REQUIRE_SYSTEM_PACKAGES").is_some_and(|v| !v.is_empty());
    assert!(!required, "{why}");
    eprintln!("skipped: {why}");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_and_select_by_subject() {
        let facts = Facts::parse(
            "# a comment\nconst XEN_DOMCTL_INTERFACE_VERSION 23\nsize xs_permissions 8\nfield xs_permissions.id 0 4\nsize hvm_info_table 48\n",
        );
        assert_eq!(facts.constant("XEN_DOMCTL_INTERFACE_VERSION"), Some(23));
        let about = facts.about(&["xs_permissions"]);
        assert_eq!(about.len(), 2);
        assert_eq!(about["field xs_permissions.id"], "0 4");
        let mut rust = RustFacts::default();
        rust.size("xs_permissions", 8);
        rust.field("xs_permissions", "id", 0, 4);
        assert_matches("test", &facts, &["xs_permissions"], &rust);
        rust.field("xs_permissions", "id", 4, 4);
        let moved =
            std::panic::catch_unwind(|| assert_matches("test", &facts, &["xs_permissions"], &rust));
        assert!(moved.is_err(), "a moved offset must fail");
    }
}
