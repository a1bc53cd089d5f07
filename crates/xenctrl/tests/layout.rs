//! Every struct the crate passes to libxenctrl, laid out as each supported
//! release's headers lay it out, and the constants it reads them with: the Rust definitions for a release must
//! say exactly what that release's committed facts say (crates/c-probe:
//! facts measured from its headers; c-probe's own tests measure the
//! installed 4.17 and Debian 13's 4.20 headers again and compare).

use c_probe::{assert_matches, committed, RustFacts};
use xenctrl::layouts::{constants, fields};

const OWNED: &[&str] = &[
    "xen_sysctl_physinfo",
    "xen_sysctl_meminfo",
    "xen_sysctl_cputopo",
    "xen_arch_domainconfig",
    "xen_domctl_getdomaininfo",
    "xen_domctl_createdomain",
    "XEN_DOMINF_dying",
    "XEN_DOMINF_hvm_guest",
    "XEN_DOMINF_shutdown",
    "XEN_DOMINF_paused",
    "XEN_DOMINF_hap",
    "XEN_DOMINF_shutdownshift",
    "XEN_DOMINF_shutdownmask",
    "SHUTDOWN_poweroff",
    "SHUTDOWN_reboot",
    "SHUTDOWN_suspend",
    "SHUTDOWN_crash",
    "SHUTDOWN_watchdog",
    "SHUTDOWN_soft_reset",
    "SHUTDOWN_MAX",
];

#[test]
fn the_layouts_of_every_release_match_its_headers() {
    for release in xenlib::RELEASES {
        let mut rust = RustFacts::default();
        for f in fields(release) {
            if f.field.is_empty() {
                rust.size(f.c_struct, f.size);
            } else {
                rust.field(f.c_struct, f.field, f.offset, f.size);
            }
        }
        for (name, value) in constants() {
            rust.constant(name, value);
        }
        let facts = committed(release.version.minor);
        assert_matches(&release.version.to_string(), &facts, OWNED, &rust);
    }
}

#[test]
fn a_moved_createdomain_field_is_caught() {
    // 4.19's layout checked against 4.18's facts: vmtrace_size moved.
    let r19 = xenlib::release(xenlib::XenVersion::new(4, 19)).unwrap();
    let mut rust = RustFacts::default();
    for f in fields(r19) {
        if f.field.is_empty() {
            rust.size(f.c_struct, f.size);
        } else {
            rust.field(f.c_struct, f.field, f.offset, f.size);
        }
    }
    let outcome = std::panic::catch_unwind(|| {
        assert_matches("4.18", &committed(18), OWNED, &rust);
    });
    assert!(outcome.is_err());
}
