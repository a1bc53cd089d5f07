//! `PoolTask`: one piece of work on the libuv pool, resolved as a Promise.
//! Every asynchronous binding call (hypervisor and xenstore operations, and
//! the calls that open them) is one, so a panic is caught in one place and
//! never crosses into JavaScript: it rejects with `INTERNAL`.

use crate::error::{internal, to_js, Failure, Result};
use napi::bindgen_prelude::{AsyncTask, Env, Task, ToNapiValue, TypeName};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

type Work<T> = Box<dyn FnOnce() -> Result<T> + Send>;

/// Work that runs on the libuv pool; its value becomes a JS value with
/// `to_js` on the main thread.
pub struct PoolTask<T: Send + 'static, J> {
    /// Taken by `compute`, which napi-rs calls once.
    work: Option<Work<T>>,
    to_js: fn(T) -> J,
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> PoolTask<T, J> {
    /// A task that runs `work`.
    pub fn new(
        to_js: fn(T) -> J,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> AsyncTask<Self> {
        AsyncTask::new(PoolTask {
            work: Some(Box::new(work)),
            to_js,
        })
    }

    /// A task that runs `operation` on `resource`, or fails with CLOSED
    /// (naming it `what`) when the resource was closed (`None`).
    pub fn on<R: ?Sized + Send + Sync + 'static>(
        resource: Option<Arc<R>>,
        what: &'static str,
        to_js: fn(T) -> J,
        operation: impl FnOnce(&R) -> Result<T> + Send + 'static,
    ) -> AsyncTask<Self> {
        Self::new(to_js, move || match resource {
            Some(resource) => operation(&resource),
            None => Err(Failure::Closed(what)),
        })
    }
}

/// Runs `call`, turning a panic into an `INTERNAL` failure.
fn guarded<T>(call: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| Err(internal(panic)))
}

impl<T: Send + 'static, J: ToNapiValue + TypeName> Task for PoolTask<T, J> {
    type Output = Result<T>;
    type JsValue = J;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(match self.work.take() {
            Some(work) => guarded(work),
            None => Err(Failure::Internal("a pool task ran twice".into())),
        })
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<J> {
        output.map(self.to_js).map_err(|f| to_js(&env, f))
    }
}
