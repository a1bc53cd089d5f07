//! The one place where failures become JS errors with a stable `code`.
//!
//! Every failing call, synchronous or run on the libuv pool, ends here: the
//! JS error has the message, the `code`, and for a hypervisor or xenstore
//! error its `errno` and `operation` (the libxenctrl or libxenstore
//! function), and `reason` for XENSTORE_UNAVAILABLE. The code is the crates'
//! (`XenError::code`, `XsError::code`: an errno name or their kind), or one
//! of this file's three. The façade reads it (`ts/errors.ts` `fromNative`,
//! which takes only the codes its `ErrorCode` lists) and decides none of its
//! own; it maps only napi-rs's statuses, for what napi-rs refuses before a
//! call reaches this crate.

use napi::bindgen_prelude::{Env, JsValue, Status};

/// A failure a caller can act on, before it becomes a JS error.
#[derive(Debug)]
pub enum Failure {
    /// The caller passed a value the operation cannot take; the message names it.
    InvalidArgument(String),
    /// The object was closed.
    Closed(&'static str),
    /// A hypervisor error (see [`xenctrl::XenError::code`]).
    Xen(xenctrl::XenError),
    /// A xenstore error (see [`xenstore::XsError::code`]).
    Xenstore(::xenstore::XsError),
    /// A panic, caught before it reached JavaScript.
    Internal(String),
}

impl From<xenctrl::XenError> for Failure {
    fn from(e: xenctrl::XenError) -> Self {
        Failure::Xen(e)
    }
}

impl From<::xenstore::XsError> for Failure {
    fn from(e: ::xenstore::XsError) -> Self {
        Failure::Xenstore(e)
    }
}

impl Failure {
    fn code(&self) -> String {
        match self {
            Failure::InvalidArgument(_) => "INVALID_ARGUMENT".into(),
            Failure::Closed(_) => "CLOSED".into(),
            Failure::Xen(e) => e.code(),
            Failure::Xenstore(e) => e.code(),
            Failure::Internal(_) => "INTERNAL".into(),
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::InvalidArgument(message) => message.clone(),
            Failure::Closed(what) => format!("the {what} was closed"),
            Failure::Xen(e) => e.to_string(),
            Failure::Xenstore(e) => e.to_string(),
            Failure::Internal(what) => format!("xen-domain-build internal error: {what}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

pub fn invalid_argument(message: impl Into<String>) -> Failure {
    Failure::InvalidArgument(message.into())
}

pub fn from_topology(e: numa::TopologyError) -> Failure {
    invalid_argument(format!("topology.{e}"))
}

pub fn from_plan(e: numa::PlanError) -> Failure {
    invalid_argument(e.to_string())
}

/// The JS error for a failure: thrown by a synchronous call, or the
/// rejection of an operation's Promise.
pub fn to_js(env: &Env, failure: Failure) -> napi::Error {
    let build = || -> napi::Result<napi::Error> {
        let mut error =
            env.create_error(napi::Error::new(Status::GenericFailure, failure.message()))?;
        error.set("code", failure.code())?;
        let (errno, operation, reason) = match &failure {
            Failure::Xen(e) => (e.errno(), e.operation(), None),
            Failure::Xenstore(e) => (
                e.errno(),
                e.operation(),
                match e {
                    ::xenstore::XsError::Unavailable(why) => Some(why.reason()),
                    _ => None,
                },
            ),
            _ => (None, None, None),
        };
        if let Some(errno) = errno {
            error.set("errno", errno)?;
        }
        if let Some(operation) = operation {
            error.set("operation", operation)?;
        }
        if let Some(reason) = reason {
            error.set("reason", reason)?;
        }
        Ok(napi::Error::from(error.to_unknown()))
    };
    build().unwrap_or_else(|failed| failed)
}

/// A caught panic, as a failure.
pub fn internal(panic: Box<dyn std::any::Any + Send>) -> Failure {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Failure::Internal(what)
}

/// Runs a synchronous binding call: its failure, or its panic, becomes the
/// JS error it throws.
pub fn sync<T>(env: &Env, call: impl FnOnce() -> Result<T>) -> napi::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .map_err(internal)
        .and_then(|result| result)
        .map_err(|failure| to_js(env, failure))
}
