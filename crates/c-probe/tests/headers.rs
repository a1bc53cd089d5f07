//! layout-facts.c compiled against real headers must print exactly the
//! committed facts of their release: Debian 12's installed libxen-dev
//! (4.17), and Debian 13's (4.20), which `scripts/xen-headers.mjs`
//! downloads into target/xen-headers/4.20 (npm test runs it). The crates'
//! layout tests compare their Rust definitions with the same files, so a
//! moved offset fails one or the other. The release table's interface
//! versions are checked against every release's facts here too.

use c_probe::{committed, committed_path, measure};
use std::path::{Path, PathBuf};
use std::process::Command;

fn assert_same(release: &str, measured: &c_probe::Facts, minor: u32) {
    let expected = committed(minor);
    let differences: Vec<String> = expected
        .0
        .iter()
        .filter(|(k, v)| measured.0.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: committed {v}, headers {:?}", measured.0.get(k)))
        .chain(
            measured
                .0
                .keys()
                .filter(|k| !expected.0.contains_key(*k))
                .map(|k| format!("{k}: only in the headers")),
        )
        .collect();
    assert!(
        differences.is_empty(),
        "{release}'s headers differ from {}:\n  {}",
        committed_path(minor).display(),
        differences.join("\n  ")
    );
}

#[test]
fn the_installed_libxen_dev_matches_its_release_s_facts() {
    if !c_probe::system_package("/usr/include/xenctrl.h", "libxen-dev") {
        return;
    }
    // Its release from the package, not from the headers being checked.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "libxen-dev"])
        .output()
        .expect("dpkg-query runs");
    let version = String::from_utf8(out.stdout).unwrap();
    let minor: u32 = version
        .strip_prefix("4.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("libxen-dev {version:?} is not a Xen 4.x"));
    assert!(
        xenlib::release(xenlib::XenVersion::new(4, minor)).is_some(),
        "the installed libxen-dev is Xen 4.{minor}, not a supported release"
    );
    assert_same(&format!("libxen-dev {version}"), &measure(&[]), minor);
}

#[test]
fn debian_13_s_libxen_dev_matches_4_20_s_facts() {
    let include = std::env::var_os("XEN_4_20_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/xen-headers/4.20/usr/include")
        });
    assert!(
        include.join("xenctrl.h").exists(),
        "{} has no xenctrl.h: run `node scripts/xen-headers.mjs` (npm test's pretest does it)",
        include.display()
    );
    assert_same("Debian 13's libxen-dev", &measure(&[&include]), 20);
}

#[test]
fn the_release_table_s_interface_versions_are_each_release_s() {
    for release in xenlib::RELEASES {
        let facts = committed(release.version.minor);
        assert_eq!(
            facts.constant("XEN_SYSCTL_INTERFACE_VERSION"),
            Some(release.sysctl_interface.into()),
            "{}",
            release.version
        );
        assert_eq!(
            facts.constant("XEN_DOMCTL_INTERFACE_VERSION"),
            Some(release.domctl_interface.into()),
            "{}",
            release.version
        );
        let size = match release.createdomain {
            xenlib::CreateDomainLayout::Bytes64 => "64",
            xenlib::CreateDomainLayout::Bytes68 => "68",
        };
        assert_eq!(
            facts
                .0
                .get("size xen_domctl_createdomain")
                .map(String::as_str),
            Some(size)
        );
    }
}
