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
use std::sync::{Mutex, Once};

thread_local! {
    /// What this thread is running under [`quietly`] (innermost first), if anything.
    static CONTAINED: Cell<Option<&'static str>> = const { Cell::new(None) };
    /// Panics begun inside the current contained scope and not yet caught.
    static BEGUN: Cell<u32> = const { Cell::new(0) };
}

/// What to tell the user if foreign code panics again while unwinding from a contained panic.
static LAST_WORDS: Mutex<Option<String>> = Mutex::new(None);

/// Sets the one line printed (after `musicfs: `) when foreign code panics a second time while
/// a contained panic unwinds, which Rust turns into an abort no `catch_unwind` can stop (redb
/// can do that on a damaged page of its free list). Instead, the process prints that line and
/// exits with status 2 at once, as if killed: the work done so far is as durable as after a
/// `kill -9`, and the next run finishes it.
pub(crate) fn set_last_words(line: String) {
    if let Ok(mut words) = LAST_WORDS.lock() {
        *words = Some(line);
    }
}

/// Runs `f`; a panic inside it becomes `Err` with the panic's message, and is logged at debug
/// level instead of printed. `what` names the foreign code for the log (`"lofty"`, `"redb"`).
///
/// The caller must treat whatever `f` was working on as unusable after a panic: it asserts
/// unwind safety on the caller's behalf.
pub(crate) fn quietly<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let outer = CONTAINED.with(|c| c.replace(Some(what)));
    let begun = BEGUN.with(|b| b.replace(0));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(outer));
    BEGUN.with(|b| b.set(begun));
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
    install_hook();
    // The unwind started here counts as begun: a panic in `value`'s destructor would be the
    // second, so the hook ends the process with its last words instead of an abort.
    let outer = CONTAINED.with(|c| c.replace(Some("a destructor")));
    let begun = BEGUN.with(|b| b.replace(1));
    let _ = panic::catch_unwind(AssertUnwindSafe(move || {
        let _dropped_by_the_unwind = value;
        panic::resume_unwind(Box::new(()));
    }));
    CONTAINED.with(|c| c.set(outer));
    BEGUN.with(|b| b.set(begun));
}

/// Chains a panic hook that stays silent for a panic [`quietly`] is about to catch on this
/// thread and passes every other panic to the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| match CONTAINED.with(Cell::get) {
            Some(what) => {
                tracing::debug!("panic inside {what} (caught): {info}");
                if BEGUN.with(|b| b.replace(b.get() + 1)) > 0 {
                    // A second panic while the first unwinds: Rust aborts after this hook.
                    let words = LAST_WORDS
                        .lock()
                        .ok()
                        .and_then(|w| w.clone())
                        .unwrap_or_else(|| format!("{what} failed twice on damaged data"));
                    eprintln!("musicfs: {words}");
                    std::process::exit(2);
                }
            }
            None => previous(info),
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::quietly;

    /// In a child process (the test binary run again on this test alone): a destructor that
    /// panics while a contained panic unwinds ends the process with status 2 and the last
    /// words, not an abort.
    #[test]
    fn a_second_panic_while_unwinding_exits_with_the_last_words() {
        struct PanicsOnDrop;
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                panic!("second");
            }
        }
        if std::env::var_os("MUSICFS_CONTAIN_CHILD").is_some() {
            super::set_last_words("repository /r: damaged".to_string());
            let _ = quietly("test", || {
                let _d = PanicsOnDrop;
                panic!("first");
            });
            unreachable!("the process ended in the hook");
        }
        let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "contain::tests::a_second_panic_while_unwinding_exits_with_the_last_words",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("MUSICFS_CONTAIN_CHILD", "1")
            .output()
            .expect("run the child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("musicfs: repository /r: damaged"),
            "{stderr}"
        );
        assert!(!stderr.contains("aborting"), "{stderr}");
    }

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
