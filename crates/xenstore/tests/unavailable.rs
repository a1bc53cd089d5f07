//! Opening xenstore where there is none: XENSTORE_UNAVAILABLE, saying which
//! of the three (library, xenstored, privileges) is missing.

use std::time::Duration;
use xenstore::{OpenOptions, Unavailable, Xenstore, XsError};

fn open(options: OpenOptions) -> XsError {
    match Xenstore::open(&options) {
        Ok(_) => panic!("opened xenstore on a machine without xenstored"),
        Err(e) => e,
    }
}

#[test]
fn no_library_is_reported_with_what_was_tried() {
    let e = open(OpenOptions {
        library_path: Some("/nonexistent/libxenstore.so.4".into()),
        ..Default::default()
    });
    assert_eq!(e.code(), "XENSTORE_UNAVAILABLE");
    match e {
        XsError::Unavailable(u @ Unavailable::NoLibrary { .. }) => {
            assert_eq!(u.reason(), "no-library");
            let Unavailable::NoLibrary { tried, .. } = u else {
                unreachable!()
            };
            assert_eq!(tried, vec!["/nonexistent/libxenstore.so.4"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_real_library_without_xenstored_says_so() {
    // Debian's libxenstore is installed here (libxen-dev pulls it in), but no
    // xenstored runs, and there is no xenbus device.
    if std::path::Path::new("/dev/xen/xenbus").exists() {
        return; // a Xen domain: the real-Xen suite covers it
    }
    if !c_probe::system_package("/usr/lib/x86_64-linux-gnu/libxenstore.so.4", "libxen-dev") {
        return;
    }
    let e = open(OpenOptions {
        probe_timeout: Duration::from_millis(500),
        ..Default::default()
    });
    assert_eq!(e.code(), "XENSTORE_UNAVAILABLE");
    match &e {
        XsError::Unavailable(u) => assert_eq!(u.reason(), "no-xenstored", "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("xenstore is unavailable: no xenstored: "),
        "{e}"
    );
}
