//! The `musicfs` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    more_open_files();
    musicfs::cli::main(shared_malloc_arenas)
}

/// Asks glibc's allocator for `arenas` arenas shared by every thread (two, or one for a pull
/// from a remote origin: `musicfs::cli::main` says which once it has read the arguments),
/// instead of up to eight per core.
///
/// A thread's allocations come from its arena, and what one arena frees only that arena can
/// use again: the destination's rescan at the end of a sync runs on threads of its own and,
/// with an arena each, grew the peak by memory the main thread had just let go (about 15 MiB of
/// the SSH pull of 100,000 files, `docs/benchmarks.md`, "Memory at 100,000 files: the allocator
/// and the final rescan"). One arena took that away but made every allocation of every thread
/// wait for one lock: in a cold sync of many small files the readers, the index writer and the
/// main thread allocate and free each file's lists and tags, and a fifth of the user time went
/// to `malloc` and `free`. Two arenas took 7 % off that sync's wall and cost 2 to 11 MiB of
/// peak at 100,000 files (`docs/benchmarks.md`, "Two malloc arenas"); a remote pull, whose
/// wall they do not change, keeps one (`docs/benchmarks.md`, "One malloc arena for a remote
/// pull"). The number is fixed, not per core, so that the memory it costs does not grow with
/// the machine. Set in the binary, not the library, which forbids `unsafe` and leaves the
/// process's allocator to whoever embeds it.
fn shared_malloc_arenas(arenas: u8) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator. It runs once the
    // arguments are read, before any thread of this process exists, so no allocation is under
    // way in another thread while the parameter changes, as glibc's manual asks of
    // `M_ARENA_MAX`. Its result is ignored: a glibc that refuses the setting keeps its default
    // arenas, which costs memory, not correctness.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, i32::from(arenas));
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = arenas;
}

/// The open files this process may hold, at least.
const OPEN_FILES: u64 = 4096;

/// Raises the soft limit on open files to [`OPEN_FILES`] when it is lower and the hard limit
/// allows, as Go's runtime does at start. A cold sync keeps up to a quarter of the soft limit
/// of copies open while they wait for their shared flush (`sync::cold`): the more wait
/// together, the fewer flushes. A login shell's default soft limit is 1,024, its hard limit
/// usually far higher. A refusal leaves the limit as it was, which costs flushes, not
/// correctness. Set in the binary, not the library, which leaves the process's limits to
/// whoever embeds it.
fn more_open_files() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let wanted = OPEN_FILES.min(hard);
        if soft < wanted {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, wanted, hard);
        }
    }
}
