//! Running code that may panic on bad input (a third-party parser, a database reading a damaged
//! file) and turning the panic into a value, without the panic's message reaching the user.
//!
//! musicfs must not panic on any input. Our own code returns errors, but two crates can still
//! panic on data we hand them: lofty on a malformed tag, and redb on a page of `index.redb`
//! that was damaged outside redb (redb checks page checksums only in its integrity check, so a
//! plain read of a garbage page can reach an `unreachable!()`). Their callers run them under
//! [`quietly`]: a chained panic hook keeps the default hook from printing the message and the
//! "note: run with `RUST_BACKTRACE=1`" line for a panic that is about to be caught, and logs
//! it at debug level instead. A panic anywhere else still reaches the previous hook unchanged.
//!
//! This module must never be used to hide a bug in musicfs itself: it wraps calls into a
//! foreign crate, and the caller turns the panic into an error that names what was damaged.

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// What this thread is running under [`quietly`] (innermost first), if anything.
    static CONTAINED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Runs `f`; a panic inside it becomes `Err` with the panic's message, and is logged at debug
/// level instead of printed. `what` names the foreign code for the log (`"lofty"`, `"redb"`).
///
/// The caller must treat whatever `f` was working on as unusable after a panic: it asserts
/// unwind safety on the caller's behalf.
pub(crate) fn quietly<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CONTAINED.with(|c| c.replace(Some(what)));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// Drops `value` while this thread unwinds from a panic started and caught here (with
/// `resume_unwind`, which runs no panic hook: nothing is printed). For a destructor that does
/// less while its thread panics, when that lesser path is the one wanted: redb then closes a
/// database without the commit it otherwise makes on close, and drops a write transaction
/// without rolling it back, so neither reads the file.
pub(crate) fn drop_while_unwinding<T>(value: T) {
    let _ = panic::catch_unwind(AssertUnwindSafe(move || {
        let _dropped_by_the_unwind = value;
        panic::resume_unwind(Box::new(()));
    }));
}

/// Chains a panic hook that stays silent for a panic [`quietly`] is about to catch on this
/// thread and passes every other panic to the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| match CONTAINED.with(Cell::get) {
            Some(what) => tracing::debug!("panic inside {what} (caught): {info}"),
            None => previous(info),
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::quietly;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(quietly("test", || 7), Ok(7));
        let caught = quietly("test", || -> u8 { panic!("bad page {}", 3) });
        assert_eq!(caught, Err("bad page 3".to_string()));
        let caught = quietly("test", || -> u8 { unreachable!() });
        assert_eq!(
            caught,
            Err("internal error: entered unreachable code".to_string())
        );
    }

    #[test]
    fn a_value_dropped_while_unwinding_sees_a_panicking_thread() {
        struct Probe<'a>(&'a std::cell::Cell<Option<bool>>);
        impl Drop for Probe<'_> {
            fn drop(&mut self) {
                self.0.set(Some(std::thread::panicking()));
            }
        }
        let seen = std::cell::Cell::new(None);
        super::drop_while_unwinding(Probe(&seen));
        assert_eq!(seen.get(), Some(true));
        assert!(!std::thread::panicking());
    }

    #[test]
    fn nested_containment_restores_the_outer_one() {
        let outer = quietly("outer", || {
            let inner = quietly("inner", || -> u8 { panic!("inner") });
            assert!(inner.is_err());
            panic!("outer")
        });
        assert_eq!(outer, Err::<(), _>("outer".to_string()));
    }
}
