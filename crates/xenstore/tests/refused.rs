//! A socket that refuses connections (xenstored gone, its socket left
//! behind): XENSTORE_UNAVAILABLE, no-xenstored. A test binary of its own:
//! it sets XENSTORED_PATH, which libxenstore reads, for the whole process.

use std::os::unix::net::UnixListener;
use xenstore::{OpenOptions, Xenstore, XsError};

#[test]
fn a_socket_nobody_listens_on_is_no_xenstored() {
    let dir = std::env::temp_dir().join(format!("xenstore-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("socket");
    // Bound then closed: the socket file stays, and connect() is refused.
    drop(UnixListener::bind(&socket).unwrap());
    std::env::set_var("XENSTORED_PATH", &socket);
    let e = match Xenstore::open(&OpenOptions::default()) {
        Ok(_) => panic!("connected to a closed socket"),
        Err(e) => e,
    };
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(e.code(), "XENSTORE_UNAVAILABLE");
    let XsError::Unavailable(u) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(u.reason(), "no-xenstored");
    assert!(e.to_string().contains("refuses connections"), "{e}");
}
