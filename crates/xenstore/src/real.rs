//! The host's libxenstore, loaded at run time. Every call checks its input
//! first; what libxenstore allocates is released with `free`, as its header
//! asks.
#![allow(unsafe_code)]

use crate::error::{Result, Unavailable, XsError};
use crate::input::{check_path, check_write};
use crate::{Access, Permission, TxId};
use std::ffi::{c_char, c_uint, c_ulong, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;
use xenlib::errno::last as last_errno;
use xenlib::{Loaded, SymbolError};

/// The libxenstore sonames tried, in order (Debian's `libxenstore4`): the
/// same soname in every supported release (its minor version grows, with
/// additions only).
pub const LIBRARY_NAMES: &[&str] = &["libxenstore.so.4"];

/// C layouts, checked against every release's `xenstore_lib.h` facts by
/// `tests/layout.rs`.
pub mod layouts {
    /// `struct xs_permissions`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct XsPermissions {
        pub id: std::ffi::c_uint,
        pub perms: std::ffi::c_uint,
    }

    /// (field, offset, size) of `struct xs_permissions`, and ("", 0, size).
    pub fn xs_permissions() -> Vec<(&'static str, usize, usize)> {
        use std::mem::{offset_of, size_of};
        vec![
            ("", 0, size_of::<XsPermissions>()),
            ("id", offset_of!(XsPermissions, id), size_of::<u32>()),
            ("perms", offset_of!(XsPermissions, perms), size_of::<u32>()),
        ]
    }
}

use layouts::XsPermissions;

#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// A libxenstore to load instead of [`LIBRARY_NAMES`].
    pub library_path: Option<PathBuf>,
    /// How long the first request may take before xenstored counts as
    /// absent: in a dom0 whose xenstored is not running, the xenbus device
    /// opens fine and requests wait for ever.
    pub probe_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            library_path: None,
            probe_timeout: Duration::from_secs(5),
        }
    }
}

type Xsh = *mut c_void;

/// The libxenstore functions used, by their C signatures (`xenstore.h`).
struct Api {
    open: unsafe extern "C" fn(c_ulong) -> Xsh,
    close: unsafe extern "C" fn(Xsh),
    read: unsafe extern "C" fn(Xsh, u32, *const c_char, *mut c_uint) -> *mut c_void,
    write: unsafe extern "C" fn(Xsh, u32, *const c_char, *const c_void, c_uint) -> bool,
    mkdir: unsafe extern "C" fn(Xsh, u32, *const c_char) -> bool,
    rm: unsafe extern "C" fn(Xsh, u32, *const c_char) -> bool,
    directory: unsafe extern "C" fn(Xsh, u32, *const c_char, *mut c_uint) -> *mut *mut c_char,
    get_permissions:
        unsafe extern "C" fn(Xsh, u32, *const c_char, *mut c_uint) -> *mut XsPermissions,
    set_permissions:
        unsafe extern "C" fn(Xsh, u32, *const c_char, *mut XsPermissions, c_uint) -> bool,
    transaction_start: unsafe extern "C" fn(Xsh) -> u32,
    transaction_end: unsafe extern "C" fn(Xsh, u32, bool) -> bool,
    introduce_domain: unsafe extern "C" fn(Xsh, c_uint, c_ulong, c_uint) -> bool,
    release_domain: unsafe extern "C" fn(Xsh, c_uint) -> bool,
    get_domain_path: unsafe extern "C" fn(Xsh, c_uint) -> *mut c_char,
}

impl Api {
    fn load(library: &Loaded) -> std::result::Result<Api, SymbolError> {
        macro_rules! symbol {
            ($name:literal) => {
                // SAFETY: the field's type is this function's C signature in
                // xenstore.h (libxenstore.so.4, stable since Xen 4.2).
                unsafe { library.symbol($name) }?
            };
        }
        Ok(Api {
            open: symbol!("xs_open"),
            close: symbol!("xs_close"),
            read: symbol!("xs_read"),
            write: symbol!("xs_write"),
            mkdir: symbol!("xs_mkdir"),
            rm: symbol!("xs_rm"),
            directory: symbol!("xs_directory"),
            get_permissions: symbol!("xs_get_permissions"),
            set_permissions: symbol!("xs_set_permissions"),
            transaction_start: symbol!("xs_transaction_start"),
            transaction_end: symbol!("xs_transaction_end"),
            introduce_domain: symbol!("xs_introduce_domain"),
            release_domain: symbol!("xs_release_domain"),
            get_domain_path: symbol!("xs_get_domain_path"),
        })
    }
}

/// An open `struct xs_handle *`.
#[derive(Clone, Copy)]
struct Handle(Xsh);

// SAFETY: libxenstore handles may be used from any thread, concurrently: it
// serialises requests on a handle with its own mutex (built with pthreads).
unsafe impl Send for Handle {}
// SAFETY: as for Send.
unsafe impl Sync for Handle {}

/// A connection to xenstored through the host's libxenstore.
pub struct Xenstore {
    api: Api,
    handle: Handle,
    library_name: String,
    // Dropped last: the function pointers in `api` point into it.
    _library: Loaded,
}

fn c_path(operation: &'static str, path: &str) -> Result<CString> {
    check_path(operation, path)?;
    // check_path refused NUL bytes.
    CString::new(path).map_err(|_| XsError::InvalidArgument {
        operation,
        message: "path: a NUL byte".into(),
    })
}

/// Why `xs_open` failed, from its errno.
fn open_failure(errno: i32) -> Unavailable {
    match errno {
        libc::EACCES | libc::EPERM => Unavailable::NoPrivileges { errno },
        libc::ENOENT => Unavailable::NoDaemon {
            detail:
                "neither xenstored's socket nor the xenbus device exists (is xenstored running?)"
                    .into(),
        },
        libc::ECONNREFUSED => Unavailable::NoDaemon {
            detail: "xenstored's socket refuses connections (xenstored is not running)".into(),
        },
        other => Unavailable::NoDaemon {
            detail: format!("xs_open failed: {}", xenlib::errno::name(other)),
        },
    }
}

/// Releases a buffer libxenstore allocated.
fn free<T>(pointer: *mut T) {
    // SAFETY: pointers passed here came from libxenstore's malloc (the same
    // libc's) and are not used after this.
    unsafe { libc::free(pointer.cast()) }
}

impl Xenstore {
    pub fn open(options: &OpenOptions) -> Result<Xenstore> {
        let library = xenlib::load::load_stable(LIBRARY_NAMES, options.library_path.as_deref())
            .map_err(|e| {
                XsError::Unavailable(Unavailable::NoLibrary {
                    tried: e.tried,
                    reason: e.reason,
                })
            })?;
        let library_name = library.name.clone();
        let api = Api::load(&library).map_err(|e| {
            XsError::Unavailable(Unavailable::NoLibrary {
                tried: vec![library_name.clone()],
                reason: e.to_string(),
            })
        })?;
        // SAFETY: flags 0: read-write, socket or xenbus device as libxenstore finds.
        let xsh = unsafe { (api.open)(0) };
        if xsh.is_null() {
            return Err(XsError::Unavailable(open_failure(last_errno())));
        }
        let store = Xenstore {
            api,
            handle: Handle(xsh),
            library_name,
            _library: library,
        };
        store.probe(options.probe_timeout)
    }

    /// One round trip, on a thread of its own so that a xenbus device with
    /// no xenstored behind it (requests wait for ever) is noticed.
    fn probe(self, timeout: Duration) -> Result<Xenstore> {
        let (sent, received) = mpsc::channel();
        let store = std::sync::Arc::new(self);
        let prober = store.clone();
        std::thread::spawn(move || {
            // Any answer, even an error from xenstored, means it is there.
            let answer = prober.directory(crate::NO_TRANSACTION, "/");
            let _ = sent.send(answer.err());
        });
        match received.recv_timeout(timeout) {
            Ok(None) => {}
            Ok(Some(XsError::Call { errno, .. })) if errno == libc::EACCES => {}
            Ok(Some(XsError::Call { errno, .. })) => {
                return Err(XsError::Unavailable(Unavailable::NoDaemon {
                    detail: format!("the first request failed: {}", xenlib::errno::name(errno)),
                }))
            }
            Ok(Some(other)) => return Err(other),
            Err(_) => {
                // The prober holds the handle, blocked: it is left to it.
                return Err(XsError::Unavailable(Unavailable::NoDaemon {
                    detail: format!(
                        "no answer within {} ms (a xenbus device with no xenstored behind it?)",
                        timeout.as_millis()
                    ),
                }));
            }
        }
        // The prober has answered and dropped its reference, or is about to.
        let mut store = store;
        loop {
            match std::sync::Arc::try_unwrap(store) {
                Ok(store) => return Ok(store),
                Err(shared) => {
                    store = shared;
                    std::thread::yield_now();
                }
            }
        }
    }

    pub fn library_name(&self) -> &str {
        &self.library_name
    }

    fn h(&self) -> Xsh {
        self.handle.0
    }

    /// The value at `path`, or `None` when there is no such node.
    pub fn read(&self, tx: TxId, path: &str) -> Result<Option<Vec<u8>>> {
        const OP: &str = "xs_read";
        let path = c_path(OP, path)?;
        let mut len: c_uint = 0;
        // SAFETY: a valid handle and NUL-terminated path; len is an out parameter.
        let data = unsafe { (self.api.read)(self.h(), tx, path.as_ptr(), &mut len) };
        if data.is_null() {
            let errno = last_errno();
            return if errno == libc::ENOENT {
                Ok(None)
            } else {
                Err(XsError::call(OP, errno))
            };
        }
        // SAFETY: libxenstore returns `len` bytes (plus a NUL) at `data`.
        let value = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) }.to_vec();
        free(data);
        Ok(Some(value))
    }

    /// Writes `value` at `path`, creating missing parents.
    pub fn write(&self, tx: TxId, path: &str, value: &[u8]) -> Result<()> {
        const OP: &str = "xs_write";
        check_write(OP, path, value)?;
        let path = c_path(OP, path)?;
        // SAFETY: a valid handle, NUL-terminated path, `value.len()` bytes at
        // value (the payload limit keeps it far below c_uint's range).
        let ok = unsafe {
            (self.api.write)(
                self.h(),
                tx,
                path.as_ptr(),
                value.as_ptr().cast(),
                value.len() as c_uint,
            )
        };
        self.ok(OP, ok)
    }

    pub fn mkdir(&self, tx: TxId, path: &str) -> Result<()> {
        const OP: &str = "xs_mkdir";
        let path = c_path(OP, path)?;
        // SAFETY: a valid handle and NUL-terminated path.
        let ok = unsafe { (self.api.mkdir)(self.h(), tx, path.as_ptr()) };
        self.ok(OP, ok)
    }

    /// Removes `path` and everything below it (a missing node is no error).
    pub fn rm(&self, tx: TxId, path: &str) -> Result<()> {
        const OP: &str = "xs_rm";
        let path = c_path(OP, path)?;
        // SAFETY: a valid handle and NUL-terminated path.
        let ok = unsafe { (self.api.rm)(self.h(), tx, path.as_ptr()) };
        self.ok(OP, ok)
    }

    /// The names of `path`'s children.
    pub fn directory(&self, tx: TxId, path: &str) -> Result<Vec<String>> {
        const OP: &str = "xs_directory";
        let path = c_path(OP, path)?;
        let mut count: c_uint = 0;
        // SAFETY: a valid handle and NUL-terminated path; count is an out parameter.
        let names = unsafe { (self.api.directory)(self.h(), tx, path.as_ptr(), &mut count) };
        if names.is_null() {
            return Err(XsError::call(OP, last_errno()));
        }
        // SAFETY: `count` pointers to NUL-terminated strings, all in the one
        // allocation at `names`, which is freed once after they are copied.
        let list = unsafe { std::slice::from_raw_parts(names, count as usize) }
            .iter()
            .map(|&name| {
                // SAFETY: each entry is a NUL-terminated string in that allocation.
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        free(names);
        Ok(list)
    }

    pub fn get_permissions(&self, tx: TxId, path: &str) -> Result<Vec<Permission>> {
        const OP: &str = "xs_get_permissions";
        let path = c_path(OP, path)?;
        let mut count: c_uint = 0;
        // SAFETY: a valid handle and NUL-terminated path; count is an out parameter.
        let perms = unsafe { (self.api.get_permissions)(self.h(), tx, path.as_ptr(), &mut count) };
        if perms.is_null() {
            return Err(XsError::call(OP, last_errno()));
        }
        // SAFETY: `count` xs_permissions at `perms` (layout checked against the header).
        let list = unsafe { std::slice::from_raw_parts(perms, count as usize) }
            .iter()
            .map(|p| Permission {
                domid: p.id,
                access: Access::from_bits(p.perms),
            })
            .collect();
        free(perms);
        Ok(list)
    }

    pub fn set_permissions(&self, tx: TxId, path: &str, permissions: &[Permission]) -> Result<()> {
        const OP: &str = "xs_set_permissions";
        let c = c_path(OP, path)?;
        if permissions.is_empty() {
            return Err(XsError::InvalidArgument {
                operation: OP,
                message: "permissions: at least the owner's entry".into(),
            });
        }
        // Each entry goes on the wire as a letter, the domid and a NUL.
        let payload = path.len()
            + 1
            + permissions
                .iter()
                .map(|p| p.domid.to_string().len() + 2)
                .sum::<usize>();
        if payload > crate::PAYLOAD_MAX_BYTES {
            return Err(XsError::InvalidArgument {
                operation: OP,
                message: format!(
                    "permissions: {} entries, {payload} bytes with the path, over xenstore's {}-byte payload",
                    permissions.len(),
                    crate::PAYLOAD_MAX_BYTES
                ),
            });
        }
        let mut raw: Vec<XsPermissions> = permissions
            .iter()
            .map(|p| XsPermissions {
                id: p.domid,
                perms: p.access.bits(),
            })
            .collect();
        // SAFETY: a valid handle, NUL-terminated path, `raw.len()` entries.
        let ok = unsafe {
            (self.api.set_permissions)(
                self.h(),
                tx,
                c.as_ptr(),
                raw.as_mut_ptr(),
                raw.len() as c_uint,
            )
        };
        self.ok(OP, ok)
    }

    pub fn transaction_start(&self) -> Result<TxId> {
        // SAFETY: a valid handle; XBT_NULL (0) means failure, with errno.
        let tx = unsafe { (self.api.transaction_start)(self.h()) };
        if tx == crate::NO_TRANSACTION {
            return Err(XsError::call("xs_transaction_start", last_errno()));
        }
        Ok(tx)
    }

    /// Commits (or with `abort`, drops) a transaction; EAGAIN: another
    /// writer changed what it touched, and nothing of it was applied.
    pub fn transaction_end(&self, tx: TxId, abort: bool) -> Result<()> {
        // SAFETY: a valid handle; tx came from transaction_start (xenstored
        // answers EINVAL/ENOENT for one it does not know).
        let ok = unsafe { (self.api.transaction_end)(self.h(), tx, abort) };
        self.ok("xs_transaction_end", ok)
    }

    pub fn introduce_domain(&self, domid: u32, store_mfn: u64, store_port: u32) -> Result<()> {
        // SAFETY: plain values (c_ulong is 64 bits on the targets we build).
        let ok = unsafe {
            (self.api.introduce_domain)(self.h(), domid, store_mfn as c_ulong, store_port)
        };
        self.ok("xs_introduce_domain", ok)
    }

    pub fn release_domain(&self, domid: u32) -> Result<()> {
        // SAFETY: plain values.
        let ok = unsafe { (self.api.release_domain)(self.h(), domid) };
        self.ok("xs_release_domain", ok)
    }

    /// `/local/domain/DOMID`, as xenstored names it.
    pub fn get_domain_path(&self, domid: u32) -> Result<String> {
        // SAFETY: a valid handle; returns a malloc'd string or NULL.
        let path = unsafe { (self.api.get_domain_path)(self.h(), domid) };
        if path.is_null() {
            return Err(XsError::call("xs_get_domain_path", last_errno()));
        }
        // SAFETY: a NUL-terminated string, freed once after the copy.
        let owned = unsafe { CStr::from_ptr(path) }
            .to_string_lossy()
            .into_owned();
        free(path);
        Ok(owned)
    }

    fn ok(&self, operation: &'static str, ok: bool) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(XsError::call(operation, last_errno()))
        }
    }
}

impl Drop for Xenstore {
    fn drop(&mut self) {
        // SAFETY: the handle came from xs_open and is closed once, here,
        // after every user (the Arc in `probe` included) has gone.
        unsafe { (self.api.close)(self.handle.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_failures_say_which_part_is_missing() {
        assert_eq!(open_failure(libc::ENOENT).reason(), "no-xenstored");
        assert_eq!(open_failure(libc::ECONNREFUSED).reason(), "no-xenstored");
        assert_eq!(open_failure(libc::EACCES).reason(), "no-privileges");
        assert_eq!(open_failure(libc::EPERM).reason(), "no-privileges");
    }

    #[test]
    fn access_bits_round_trip() {
        for a in [Access::None, Access::Read, Access::Write, Access::Both] {
            assert_eq!(Access::from_bits(a.bits()), a);
            assert_eq!(Access::from_name(a.name()), Some(a));
        }
        // xenstored's owner bit is not an access.
        assert_eq!(Access::from_bits(0x08 | 1), Access::Read);
    }
}
