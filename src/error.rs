//! The one place where failures become JS errors with a stable `code`.

/// The `code` of a JS error thrown by the binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The caller passed a value the operation cannot take.
    InvalidArgument,
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
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
