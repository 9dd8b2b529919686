//! The per-Lua-state core: one current_thread tokio runtime that runs on the Lua thread.
//!
//! Lua calls block inside this runtime (the sync client) instead of handing work to an I/O
//! thread: every cross-thread hand-off costs a wake-up per message (see
//! shared/design/hot-path.md). The runtime is shared by `Rc` with every client created in the
//! same Lua state, so it lives exactly as long as the last of them.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use mlua::Lua;
use tokio::runtime::{Builder, Runtime};

pub struct Core {
    runtime: Runtime,
}

impl Core {
    /// The core of this Lua state, created on first use.
    pub fn of(lua: &Lua) -> mlua::Result<Rc<Core>> {
        if let Some(core) = lua.app_data_ref::<Rc<Core>>() {
            return Ok(Rc::clone(&core));
        }
        let runtime = Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|err| mlua::Error::runtime(format!("cannot start the I/O core: {err}")))?;
        let core = Rc::new(Core { runtime });
        lua.set_app_data(Rc::clone(&core));
        Ok(core)
    }

    /// Runs `work` to completion on the Lua thread.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// Runs `work` on the Lua thread for at most `limit`; `None` when the limit expired.
    pub fn block_on_for<F: Future>(&self, limit: Option<Duration>, work: F) -> Option<F::Output> {
        match limit {
            None => Some(self.runtime.block_on(work)),
            // The timer must be made inside the runtime, which owns the clock.
            Some(limit) => self
                .runtime
                .block_on(async move { tokio::time::timeout(limit, work).await.ok() }),
        }
    }
}
