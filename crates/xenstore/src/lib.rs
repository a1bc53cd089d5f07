//! A xenstore client over the host's `libxenstore.so.4`, loaded at run time
//! (by `xenlib`, which loads Xen's libraries for every crate), so that the addon loads on machines
//! without Xen. libxenstore picks xenstored's socket or the xenbus device
//! itself, and its handles are thread-safe: one [`Xenstore`] serves every
//! thread of the libuv pool.
//!
//! Input is checked against xenstored's own rules before any call
//! ([`check_path`], [`check_write`]), so bad input fails the same way
//! whatever daemon (or in-memory store) is behind it.
//!
//! Every `unsafe` is in `real` (the calls into libxenstore), each justified.
#![deny(unsafe_code)]

mod error;
mod input;
mod real;

pub use error::{Result, Unavailable, XsError};
pub use input::{
    check_path, check_write, ABS_PATH_MAX_BYTES, PAYLOAD_MAX_BYTES, REL_PATH_MAX_BYTES,
};
pub use real::{layouts, OpenOptions, Xenstore, LIBRARY_NAMES};

/// A transaction id; [`NO_TRANSACTION`] (`XBT_NULL`) for a call outside any.
pub type TxId = u32;

pub const NO_TRANSACTION: TxId = 0;

/// What a domain may do to a node (`XS_PERM_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    Write,
    Both,
}

impl Access {
    /// From `XS_PERM_READ` / `XS_PERM_WRITE` bits; xenstored's internal
    /// bits (owner, ENOENT_OK, ignore) are not part of the answer.
    pub fn from_bits(bits: u32) -> Access {
        match bits & 3 {
            0 => Access::None,
            1 => Access::Read,
            2 => Access::Write,
            _ => Access::Both,
        }
    }

    pub fn bits(self) -> u32 {
        match self {
            Access::None => 0,
            Access::Read => 1,
            Access::Write => 2,
            Access::Both => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Access::None => "none",
            Access::Read => "read",
            Access::Write => "write",
            Access::Both => "both",
        }
    }

    pub fn from_name(name: &str) -> Option<Access> {
        [Access::None, Access::Read, Access::Write, Access::Both]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// One entry of a node's permissions. As in `xs_permissions`, the first
/// entry names the owner (who may do anything) and what every domain not
/// listed gets; the others grant one domain its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    pub domid: u32,
    pub access: Access,
}
