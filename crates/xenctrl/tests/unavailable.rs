//! Opening the hypervisor where there is no Xen: a clear XEN_UNAVAILABLE,
//! saying which part is missing.

use std::path::PathBuf;
use xenctrl::{OpenOptions, Unavailable, XenCtrl, XenError};

fn open(options: OpenOptions) -> XenError {
    match XenCtrl::open(&options) {
        Ok(_) => panic!("opened a hypervisor on a machine without Xen"),
        Err(e) => e,
    }
}

#[test]
fn no_library_is_reported_with_what_was_tried() {
    let e = open(OpenOptions {
        library_path: Some("/nonexistent/libxenctrl.so.4.17".into()),
        ..Default::default()
    });
    assert_eq!(e.code(), "XEN_UNAVAILABLE");
    match e {
        XenError::Unavailable(Unavailable::NoLibrary { tried, .. }) => {
            assert_eq!(tried, vec!["/nonexistent/libxenctrl.so.4.17"])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_real_library_without_privcmd_is_not_a_dom0() {
    // Debian's libxenctrl is installed here (libxen-dev pulls it in), but this
    // machine runs no Xen.
    let library = PathBuf::from("/usr/lib/x86_64-linux-gnu/libxenctrl.so.4.17");
    if !c_probe::system_package(&library.to_string_lossy(), "libxen-dev") {
        return;
    }
    let e = open(OpenOptions {
        library_path: Some(library),
        privcmd_path: "/nonexistent/privcmd".into(),
        ..OpenOptions::default()
    });
    assert_eq!(e.code(), "XEN_UNAVAILABLE");
    assert_eq!(
        e.to_string(),
        "Xen is unavailable: /nonexistent/privcmd does not exist: this machine is not running as a Xen dom0"
    );
}

#[test]
fn default_open_on_this_machine_is_unavailable() {
    if std::path::Path::new("/dev/xen/privcmd").exists() {
        return; // a real dom0: the real-Xen suite covers it
    }
    assert_eq!(open(OpenOptions::default()).code(), "XEN_UNAVAILABLE");
}
