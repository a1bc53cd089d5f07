//! The one place where failures become JS errors with a stable `code`.
//!
//! Synchronous calls throw `napi::Error<Code>`; a hypervisor operation, which
//! runs on the libuv pool, rejects with a JS Error that also carries the errno
//! and the operation that failed (see [`reject`]).

use napi::bindgen_prelude::{Env, JsValue, Status};

/// The `code` of a JS error thrown by the binding's synchronous calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Code {
    /// The caller passed a value the operation cannot take.
    InvalidArgument,
    /// A hypervisor error's own code (see [`xenctrl::XenError::code`]).
    Xen(String),
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Xen(code) => code,
        }
    }
}

pub type Error = napi::Error<Code>;
pub type Result<T> = std::result::Result<T, Error>;

pub fn invalid_argument(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidArgument, message.into())
}

pub fn from_topology(e: numa::TopologyError) -> Error {
    invalid_argument(format!("topology.{e}"))
}

pub fn from_plan(e: numa::PlanError) -> Error {
    invalid_argument(e.to_string())
}

/// A hypervisor error from a synchronous call (the simulator's controls).
pub fn from_xen(e: xenctrl::XenError) -> Error {
    Error::new(Code::Xen(e.code()), e.to_string())
}

/// A failure of a native operation (hypervisor or xenstore), as `reject`
/// shows it to JavaScript.
pub trait NativeFailure: std::fmt::Display {
    fn code(&self) -> String;
    fn errno(&self) -> Option<i32>;
    fn operation(&self) -> Option<&'static str>;
    /// Why something is unavailable, when that is the failure.
    fn reason(&self) -> Option<&'static str> {
        None
    }
}

impl NativeFailure for xenctrl::XenError {
    fn code(&self) -> String {
        xenctrl::XenError::code(self)
    }
    fn errno(&self) -> Option<i32> {
        xenctrl::XenError::errno(self)
    }
    fn operation(&self) -> Option<&'static str> {
        xenctrl::XenError::operation(self)
    }
}

impl NativeFailure for ::xenstore::XsError {
    fn code(&self) -> String {
        ::xenstore::XsError::code(self)
    }
    fn errno(&self) -> Option<i32> {
        ::xenstore::XsError::errno(self)
    }
    fn operation(&self) -> Option<&'static str> {
        ::xenstore::XsError::operation(self)
    }
    fn reason(&self) -> Option<&'static str> {
        match self {
            ::xenstore::XsError::Unavailable(why) => Some(why.reason()),
            _ => None,
        }
    }
}

/// A JS Error for a failed native operation: `code` (the errno's name, or
/// XEN_UNAVAILABLE, XEN_VERSION_UNSUPPORTED, XENSTORE_UNAVAILABLE,
/// INVALID_ARGUMENT), `errno`, `operation` and `reason` where they apply.
pub fn reject(env: &Env, e: &dyn NativeFailure) -> napi::Error {
    let build = || -> napi::Result<napi::Error> {
        let mut error =
            env.create_error(napi::Error::new(Status::GenericFailure, e.to_string()))?;
        error.set("code", e.code())?;
        if let Some(errno) = e.errno() {
            error.set("errno", errno)?;
        }
        if let Some(operation) = e.operation() {
            error.set("operation", operation)?;
        }
        if let Some(reason) = e.reason() {
            error.set("reason", reason)?;
        }
        Ok(napi::Error::from(error.to_unknown()))
    };
    build().unwrap_or_else(|failed| failed)
}

/// An internal failure (a panic caught before it reached JavaScript).
pub fn internal(panic: Box<dyn std::any::Any + Send>) -> napi::Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    napi::Error::new(
        Status::GenericFailure,
        format!("xen-domain-build internal error: {what}"),
    )
}
