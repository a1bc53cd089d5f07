//! Errors of the hypervisor interface. A failed call keeps its operation
//! (the libxenctrl function) and errno; the binding gives each a stable code.

use crate::types::XenVersion;

/// Why the hypervisor cannot be opened on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// No libxenctrl could be loaded.
    NoLibrary { tried: Vec<String>, reason: String },
    /// The privcmd device is missing: this is not a Xen dom0 (or xenfs is not mounted).
    NoPrivcmd { path: String },
    /// Hypercalls need root.
    NotRoot { euid: u32 },
    /// `xc_interface_open` itself failed.
    OpenFailed { errno: i32 },
    /// The library is another release's than the hypervisor's.
    LibraryMismatch(xenlib::LibraryMismatch),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unavailable::NoLibrary { tried, reason } => {
                write!(
                    f,
                    "no libxenctrl could be loaded (tried {}): {reason}",
                    tried.join(", ")
                )
            }
            Unavailable::NoPrivcmd { path } => {
                write!(
                    f,
                    "{path} does not exist: this machine is not running as a Xen dom0"
                )
            }
            Unavailable::NotRoot { euid } => write!(
                f,
                "hypercalls need root, and this process runs as uid {euid}"
            ),
            Unavailable::LibraryMismatch(m) => write!(f, "{m}"),
            Unavailable::OpenFailed { errno } => {
                write!(
                    f,
                    "xc_interface_open failed: {} ({errno})",
                    errno_name(*errno)
                )
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XenError {
    /// A hypercall (or libxenctrl call) failed with `errno`.
    Hypercall {
        operation: &'static str,
        errno: i32,
    },
    Unavailable(Unavailable),
    VersionUnsupported {
        version: XenVersion,
        supported: Vec<XenVersion>,
    },
    InvalidArgument {
        operation: &'static str,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, XenError>;

impl XenError {
    pub fn hypercall(operation: &'static str, errno: i32) -> Self {
        XenError::Hypercall { operation, errno }
    }

    /// The stable code a caller can act on: the errno's name for a failed
    /// hypercall (`ENOMEM`, `ESRCH`, ...), else what went wrong.
    pub fn code(&self) -> String {
        match self {
            XenError::Hypercall { errno, .. } => errno_name(*errno),
            XenError::Unavailable(_) => "XEN_UNAVAILABLE".into(),
            XenError::VersionUnsupported { .. } => "XEN_VERSION_UNSUPPORTED".into(),
            XenError::InvalidArgument { .. } => "INVALID_ARGUMENT".into(),
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            XenError::Hypercall { errno, .. } => Some(*errno),
            XenError::Unavailable(Unavailable::OpenFailed { errno }) => Some(*errno),
            _ => None,
        }
    }

    pub fn operation(&self) -> Option<&'static str> {
        match self {
            XenError::Hypercall { operation, .. } | XenError::InvalidArgument { operation, .. } => {
                Some(operation)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for XenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XenError::Hypercall { operation, errno } => write!(
                f,
                "{operation} failed: {} ({errno}, {})",
                errno_name(*errno),
                std::io::Error::from_raw_os_error(*errno)
                    .to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or("")
            ),
            XenError::Unavailable(why) => write!(f, "Xen is unavailable: {why}"),
            XenError::VersionUnsupported { version, supported } => write!(
                f,
                "{}",
                xenlib::Unsupported {
                    version: *version,
                    supported: supported.clone(),
                }
            ),
            XenError::InvalidArgument { operation, message } => write!(f, "{operation}: {message}"),
        }
    }
}

impl std::error::Error for XenError {}

/// The symbolic name of an errno value, as in `<errno.h>`.
pub use xenlib::errno::name as errno_name;

/// The errno of a name from [`errno_name`], for callers that name errnos.
pub use xenlib::errno::from_name as errno_from_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_codes() {
        assert_eq!(errno_name(libc::ENOMEM), "ENOMEM");
        assert_eq!(errno_name(9999), "E9999");
        // A dead xenstored's socket: the name, not E32.
        assert_eq!(errno_name(libc::EPIPE), "EPIPE");
        assert_eq!(errno_from_name("ESRCH"), Some(libc::ESRCH));
        assert_eq!(errno_from_name("EWHAT"), None);
        let e = XenError::hypercall("xc_domain_claim_pages", libc::ENOMEM);
        assert_eq!(e.code(), "ENOMEM");
        assert_eq!(e.errno(), Some(libc::ENOMEM));
        assert_eq!(e.operation(), Some("xc_domain_claim_pages"));
        assert_eq!(
            e.to_string(),
            "xc_domain_claim_pages failed: ENOMEM (12, Cannot allocate memory)"
        );
        let v = XenError::VersionUnsupported {
            version: crate::XenVersion {
                major: 4,
                minor: 99,
            },
            supported: crate::supported_versions(),
        };
        assert_eq!(v.code(), "XEN_VERSION_UNSUPPORTED");
        assert_eq!(
            v.to_string(),
            "Xen 4.99 is newer than the newest release this version of xen-domain-build knows (supported: 4.17 to 4.22)"
        );
    }
}
