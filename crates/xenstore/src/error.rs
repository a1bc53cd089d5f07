//! Errors of the xenstore client. A failed call keeps its operation (the
//! libxenstore function) and errno, whose name is its stable code.

use xenlib::errno::name as errno_name;

/// Why xenstore cannot be opened here: one of three things.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No libxenstore could be loaded.
    NoLibrary { tried: Vec<String>, reason: String },
    /// No xenstored to talk to: neither its socket nor the xenbus device is
    /// there, the socket refuses connections, or nothing answers.
    NoDaemon { detail: String },
    /// xenstored is there, but this process may not connect to it.
    NoPrivileges { errno: i32 },
}

impl Unavailable {
    /// A short stable name of the reason: `no-library`, `no-xenstored`, `no-privileges`.
    pub fn reason(&self) -> &'static str {
        match self {
            Unavailable::NoLibrary { .. } => "no-library",
            Unavailable::NoDaemon { .. } => "no-xenstored",
            Unavailable::NoPrivileges { .. } => "no-privileges",
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoLibrary { tried, reason } => write!(
                f,
                "no libxenstore could be loaded (tried {}): {reason}",
                tried.join(", ")
            ),
            Unavailable::NoDaemon { detail } => write!(f, "no xenstored: {detail}"),
            Unavailable::NoPrivileges { errno } => write!(
                f,
                "no privileges to connect to xenstored: {} (run as root in dom0)",
                errno_name(*errno)
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XsError {
    /// A libxenstore call failed with `errno` (xenstored's answer, or the
    /// connection's).
    Call {
        operation: &'static str,
        errno: i32,
    },
    Unavailable(Unavailable),
    /// Refused before any call: the message names the field and the rule.
    InvalidArgument {
        operation: &'static str,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, XsError>;

impl XsError {
    pub fn call(operation: &'static str, errno: i32) -> Self {
        XsError::Call { operation, errno }
    }

    /// The errno's name for a failed call (`ENOENT`, `EACCES`, `EAGAIN`, ...),
    /// else `XENSTORE_UNAVAILABLE` or `INVALID_ARGUMENT`.
    pub fn code(&self) -> String {
        match self {
            XsError::Call { errno, .. } => errno_name(*errno),
            XsError::Unavailable(_) => "XENSTORE_UNAVAILABLE".into(),
            XsError::InvalidArgument { .. } => "INVALID_ARGUMENT".into(),
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            XsError::Call { errno, .. } => Some(*errno),
            XsError::Unavailable(Unavailable::NoPrivileges { errno }) => Some(*errno),
            _ => None,
        }
    }

    pub fn operation(&self) -> Option<&'static str> {
        match self {
            XsError::Call { operation, .. } | XsError::InvalidArgument { operation, .. } => {
                Some(operation)
            }
            XsError::Unavailable(_) => None,
        }
    }
}

impl std::fmt::Display for XsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XsError::Call { operation, errno } => write!(
                f,
                "{operation} failed: {} ({errno}, {})",
                errno_name(*errno),
                std::io::Error::from_raw_os_error(*errno)
                    .to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or("")
            ),
            XsError::Unavailable(why) => write!(f, "xenstore is unavailable: {why}"),
            XsError::InvalidArgument { operation, message } => write!(f, "{operation}: {message}"),
        }
    }
}

impl std::error::Error for XsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_the_errno_or_the_kind() {
        let e = XsError::call("xs_transaction_end", libc::EAGAIN);
        assert_eq!(e.code(), "EAGAIN");
        assert_eq!(e.errno(), Some(libc::EAGAIN));
        assert_eq!(e.operation(), Some("xs_transaction_end"));
        assert_eq!(
            e.to_string(),
            "xs_transaction_end failed: EAGAIN (11, Resource temporarily unavailable)"
        );
        let u = XsError::Unavailable(Unavailable::NoPrivileges {
            errno: libc::EACCES,
        });
        assert_eq!(u.code(), "XENSTORE_UNAVAILABLE");
        assert_eq!(
            u.to_string(),
            "xenstore is unavailable: no privileges to connect to xenstored: EACCES (run as root in dom0)"
        );
    }
}
