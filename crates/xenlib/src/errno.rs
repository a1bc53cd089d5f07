//! errno as Xen's libraries report it: read at once after a failed call,
//! cleared before calls that fail without always setting it, and named as
//! `<errno.h>` names it (the codes callers act on).

/// The errno of the call that just failed on this thread; EIO when the call
/// left none (so a failure never reads as success).
pub fn last() -> i32 {
    match last_or_zero() {
        0 => libc::EIO,
        e => e,
    }
}

/// This thread's errno as it is, 0 included.
pub fn last_or_zero() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Sets this thread's errno to 0, before a call that may fail without
/// setting it (libxenguest's own checks), so that a stale value is not read.
pub fn clear() {
    // SAFETY: __errno_location has no preconditions; it returns the
    // address of this thread's errno.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: that address is valid and writable for as long as the thread
    // lives, and only this thread uses it.
    unsafe { *errno = 0 };
}

/// The C library's message for `errno`, without Rust's "(os error N)".
pub fn message(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The symbolic name of an errno value, as in `<errno.h>`.
pub fn name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::EDOM => "EDOM",
        libc::ERANGE => "ERANGE",
        libc::EDEADLK => "EDEADLK",
        libc::ENOSYS => "ENOSYS",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ESTALE => "ESTALE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ECANCELED => "ECANCELED",
        libc::EPIPE => "EPIPE",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTCONN => "ENOTCONN",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EROFS => "EROFS",

        libc::EILSEQ => "EILSEQ",
        _ => return format!("E{errno}"),
    };
    name.into()
}

/// The errno of a name from [`name`], for callers that name errnos.
pub fn from_name(wanted: &str) -> Option<i32> {
    (1..=133).find(|&e| name(e) == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_messages_and_clearing() {
        assert_eq!(name(libc::ENOMEM), "ENOMEM");
        assert_eq!(name(9999), "E9999");
        assert_eq!(from_name("ESRCH"), Some(libc::ESRCH));
        assert_eq!(from_name("EWHAT"), None);
        assert_eq!(message(libc::ENOMEM), "Cannot allocate memory");
        clear();
        assert_eq!(last_or_zero(), 0);
        assert_eq!(last(), libc::EIO);
    }
}
