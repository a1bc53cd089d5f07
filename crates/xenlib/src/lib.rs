//! Xen's tool libraries (libxenctrl, libxenguest, libxenstore), loaded at run
//! time so that the addon loads on machines without Xen. One place for what
//! the three crates that call them share:
//!
//! - [`releases`]: every Xen release this project supports, with what
//!   differs between them (sonames, interface versions, the createdomain
//!   layout, behaviour changes). The facts are in `docs/XEN-RELEASES.md`.
//! - [`load`]: finding a library (the running hypervisor's release first),
//!   loading it, and checking that it is the release that runs.
//! - [`errno`]: reading and clearing errno, its names and messages.
//!
//! Only [`load`] has `unsafe` code (dlopen, dlsym, errno's location).

pub mod errno;
pub mod load;
pub mod releases;

/// Why a symbol could not be found.
pub use libloading::Error as SymbolError;
pub use load::{LibraryMismatch, Loaded, NotFound};
pub use releases::{
    check_supported, release, CreateDomainLayout, Release, Unsupported, XenVersion, RELEASES,
};
