//! The per-Lua-state core: a current_thread tokio runtime the Lua thread runs itself, the
//! doorbell descriptor copas waits on, the wakers that tell which handles to look at, and
//! the timers of calls that wait.

pub(crate) mod call_timer;
pub(crate) mod core;
pub(crate) mod corked;
pub(crate) mod doorbell;
pub(crate) mod first_steps;
pub(crate) mod reactor_fd;
pub(crate) mod ready;
