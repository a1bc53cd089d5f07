//! `Xenstore`: the host's xenstored through libxenstore. Every operation runs
//! on the libuv pool and returns a Promise; panics are caught there; failures
//! reject with `code` (the errno's name, XENSTORE_UNAVAILABLE or
//! INVALID_ARGUMENT), `errno` and `operation`.

use crate::convert::{to_u32, to_u64};
use crate::error::{invalid_argument, Result};
use crate::task::PoolTask;
use ::xenstore::{Access, Permission, TxId, Xenstore as Store};
use napi::bindgen_prelude::{AsyncTask, BigInt, ToNapiValue, TypeName};
use napi_derive::napi;
use std::sync::{Arc, RwLock};
use std::time::Duration;

fn nothing(_: ()) {}

fn same<T>(value: T) -> T {
    value
}

type ReadTask = PoolTask<Option<Vec<u8>>, Option<String>>;

fn text(value: Option<Vec<u8>>) -> Option<String> {
    value.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

fn tx_id(value: f64) -> Result<TxId> {
    to_u32(value, || "tx".into())
}

fn domid(value: f64) -> Result<u32> {
    to_u32(value, || "domid".into())
}

#[napi(object)]
pub struct PermissionJs {
    pub domid: u32,
    /// "none", "read", "write" or "both".
    pub access: String,
}

#[napi(object)]
pub struct PermissionInput {
    pub domid: f64,
    pub access: String,
}

fn permissions_js(list: Vec<Permission>) -> Vec<PermissionJs> {
    list.into_iter()
        .map(|p| PermissionJs {
            domid: p.domid,
            access: p.access.name().into(),
        })
        .collect()
}

fn permissions(list: &[PermissionInput]) -> Result<Vec<Permission>> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let access = Access::from_name(&p.access).ok_or_else(|| {
                invalid_argument(format!(
                    "permissions[{i}].access: {:?} is not \"none\", \"read\", \"write\" or \"both\"",
                    p.access
                ))
            })?;
            Ok(Permission {
                domid: to_u32(p.domid, || format!("permissions[{i}].domid"))?,
                access,
            })
        })
        .collect()
}

/// A connection to xenstored (`openXenstore`). `tx` is a transaction id from
/// `transactionStart`, or 0 for none.
#[napi]
pub struct NativeXenstore {
    /// `None` once closed; operations in flight hold their own reference.
    store: RwLock<Option<Arc<Store>>>,
    library_name: String,
}

impl NativeXenstore {
    fn run<T: Send + 'static, J: ToNapiValue + TypeName>(
        &self,
        to_js: fn(T) -> J,
        operation: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> AsyncTask<PoolTask<T, J>> {
        let store = self
            .store
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        PoolTask::on(store, "xenstore", to_js, operation)
    }
}

#[napi]
impl NativeXenstore {
    /// The library that was loaded.
    #[napi(getter)]
    pub fn library_name(&self) -> String {
        self.library_name.clone()
    }

    /// Lets go of the connection (once the operations in flight end); later
    /// calls fail with `CLOSED`. Closing twice is fine.
    #[napi]
    pub fn close(&self) {
        self.store
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }

    /// The value at `path`, or null when there is no such node.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn read(&self, tx: f64, path: String) -> AsyncTask<ReadTask> {
        self.run(text, move |s| Ok(s.read(tx_id(tx)?, &path)?))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn write(&self, tx: f64, path: String, value: String) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| {
            Ok(s.write(tx_id(tx)?, &path, value.as_bytes())?)
        })
    }

    /// Writes `values[i]` at `base/keys[i]`, in order, in one trip to the
    /// pool; every path is checked before the first write.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn write_all(
        &self,
        tx: f64,
        base: String,
        keys: Vec<String>,
        values: Vec<String>,
    ) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| {
            let tx = tx_id(tx)?;
            if keys.len() != values.len() {
                return Err(invalid_argument(format!(
                    "writeAll: {} keys and {} values",
                    keys.len(),
                    values.len()
                )));
            }
            let paths: Vec<String> = keys.iter().map(|k| format!("{base}/{k}")).collect();
            for (path, value) in paths.iter().zip(&values) {
                ::xenstore::check_write("xs_write", path, value.as_bytes())?;
            }
            for (path, value) in paths.iter().zip(&values) {
                s.write(tx, path, value.as_bytes())?;
            }
            Ok(())
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn mkdir(&self, tx: f64, path: String) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| Ok(s.mkdir(tx_id(tx)?, &path)?))
    }

    /// Removes the node and everything below it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn rm(&self, tx: f64, path: String) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| Ok(s.rm(tx_id(tx)?, &path)?))
    }

    /// The names of the node's children.
    #[napi(ts_return_type = "Promise<string[]>")]
    pub fn directory(
        &self,
        tx: f64,
        path: String,
    ) -> AsyncTask<PoolTask<Vec<String>, Vec<String>>> {
        self.run(same, move |s| Ok(s.directory(tx_id(tx)?, &path)?))
    }

    #[napi(ts_return_type = "Promise<PermissionJs[]>")]
    pub fn get_permissions(
        &self,
        tx: f64,
        path: String,
    ) -> AsyncTask<PoolTask<Vec<Permission>, Vec<PermissionJs>>> {
        self.run(permissions_js, move |s| {
            Ok(s.get_permissions(tx_id(tx)?, &path)?)
        })
    }

    /// The first entry is the owner and what other domains get.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_permissions(
        &self,
        tx: f64,
        path: String,
        permissions: Vec<PermissionInput>,
    ) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| {
            let list = self::permissions(&permissions)?;
            Ok(s.set_permissions(tx_id(tx)?, &path, &list)?)
        })
    }

    #[napi(ts_return_type = "Promise<number>")]
    pub fn transaction_start(&self) -> AsyncTask<PoolTask<TxId, u32>> {
        self.run(same, |s| Ok(s.transaction_start()?))
    }

    /// Commits, or with `abort` drops, a transaction; EAGAIN: it conflicted
    /// with another writer and nothing of it was applied.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn transaction_end(&self, tx: f64, abort: bool) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| Ok(s.transaction_end(tx_id(tx)?, abort)?))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn introduce_domain(
        &self,
        domid: f64,
        store_mfn: BigInt,
        store_port: f64,
    ) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| {
            let domid = self::domid(domid)?;
            let (signed, mfn, lossless) = store_mfn.get_u64();
            if signed || !lossless {
                return Err(invalid_argument("storeMfn: not an unsigned 64-bit integer"));
            }
            let port = to_u32(store_port, || "storePort".into())?;
            Ok(s.introduce_domain(domid, mfn, port)?)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn release_domain(&self, domid: f64) -> AsyncTask<PoolTask<(), ()>> {
        self.run(nothing, move |s| Ok(s.release_domain(self::domid(domid)?)?))
    }

    #[napi(ts_return_type = "Promise<string>")]
    pub fn get_domain_path(&self, domid: f64) -> AsyncTask<PoolTask<String, String>> {
        self.run(same, move |s| Ok(s.get_domain_path(self::domid(domid)?)?))
    }
}

/// How `openXenstore` connects.
#[napi(object)]
pub struct XenstoreOpenOptions {
    /// A libxenstore to load instead of libxenstore.so.4.
    pub library_path: Option<String>,
    /// How long the first request may take before xenstored counts as
    /// absent (default 5000).
    pub probe_timeout_ms: Option<f64>,
}

fn connected(store: Store) -> NativeXenstore {
    NativeXenstore {
        library_name: store.library_name().into(),
        store: RwLock::new(Some(Arc::new(store))),
    }
}

/// Connects to xenstored through the host's libxenstore.
#[napi(ts_return_type = "Promise<NativeXenstore>")]
pub fn open_xenstore(
    options: Option<XenstoreOpenOptions>,
) -> AsyncTask<PoolTask<Store, NativeXenstore>> {
    PoolTask::new(connected, move || {
        let mut open = ::xenstore::OpenOptions::default();
        if let Some(options) = options {
            open.library_path = options.library_path.map(Into::into);
            if let Some(ms) = options.probe_timeout_ms {
                let ms = to_u64(ms, || "options.probeTimeoutMs".into())?;
                open.probe_timeout = Duration::from_millis(ms);
            }
        }
        Ok(Store::open(&open)?)
    })
}
