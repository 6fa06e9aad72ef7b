//! The `musicfs` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    one_malloc_arena();
    musicfs::cli::main()
}

/// Asks glibc's allocator for one arena for every thread, instead of up to eight per core.
///
/// A thread's allocations come from its arena, and what one arena frees only that arena can
/// use again: the destination's rescan at the end of a sync runs on threads of its own and,
/// with an arena each, grew the peak by memory the main thread had just let go (about 15 MiB of
/// the SSH pull of 100,000 files, `docs/benchmarks.md`, "Memory at 100,000 files: the allocator
/// and the final rescan"). The threads that share the one arena allocate little while they
/// work (read buffers are reused, chunks are hashed in place), and the measured CPU time did
/// not change. Set in the binary, not the library, which forbids `unsafe` and leaves the
/// process's allocator to whoever embeds it.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator. It runs first thing in
    // `main`, before any thread of this process exists, so no allocation is under way in
    // another thread while the parameter changes, as glibc's manual asks of `M_ARENA_MAX`.
    // Its result is ignored: a glibc that refuses the setting keeps its default arenas, which
    // costs memory, not correctness.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
