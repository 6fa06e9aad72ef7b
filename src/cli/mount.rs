use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::{exit, ConnectArgs, GlobalArgs};
use crate::mount::{
    check_may_share, default_log_file, mount, shell_quoted, spawn_detached, Access, MountOptions,
};

#[derive(Debug, Args)]
pub struct MountArgs {
    /// An empty directory to mount on
    pub mountpoint: PathBuf,
    /// Stay in the foreground (otherwise the mount is served by a detached process)
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount even if MOUNTPOINT is not empty (its files are hidden until unmounted)
    #[arg(long)]
    pub nonempty: bool,
    /// Let every user read the mount, as file modes allow (FUSE's allow_other; a user other
    /// than root needs `user_allow_other` in /etc/fuse.conf)
    #[arg(long, conflicts_with = "allow_root")]
    pub allow_other: bool,
    /// Let root read the mount too (FUSE's allow_root; a user other than root needs
    /// `user_allow_other` in /etc/fuse.conf)
    #[arg(long)]
    pub allow_root: bool,
    /// Memory for verified chunks, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub cache_size: usize,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Once mounted, write `ready DEVICE` on stdout (how a detached server reports)
    #[arg(long, hide = true, requires = "foreground")]
    pub report_ready: bool,
}

pub fn run(global: &GlobalArgs, args: &MountArgs) -> anyhow::Result<u8> {
    let options = MountOptions {
        cache_bytes: args.cache_size.saturating_mul(1 << 20),
        nonempty: args.nonempty,
        access: if args.allow_other {
            Access::Everyone
        } else if args.allow_root {
            Access::OwnerAndRoot
        } else {
            Access::Owner
        },
        origins: args.connect.open_options(false),
        ..MountOptions::default()
    };
    if !args.foreground {
        if options.access != Access::Owner {
            check_may_share()?;
        }
        let repo = global.open_repo()?;
        let mut argv: Vec<OsString> = vec!["--repo".into(), repo.root().into()];
        drop(repo);
        argv.push(
            if global.verbose {
                "--verbose"
            } else {
                "--quiet"
            }
            .into(),
        );
        argv.extend([
            "mount".into(),
            "--foreground".into(),
            "--report-ready".into(),
            "--cache-size".into(),
            args.cache_size.to_string().into(),
        ]);
        if args.nonempty {
            argv.push("--nonempty".into());
        }
        if args.allow_other {
            argv.push("--allow-other".into());
        }
        if args.allow_root {
            argv.push("--allow-root".into());
        }
        // The global --log-file names the mount's log.
        let log = match &global.log_file {
            Some(log) => std::path::absolute(log).context("finding the log file")?,
            None => default_log_file(&args.mountpoint)
                .context("no place for the mount's log: set --log-file, XDG_STATE_HOME or HOME")?,
        };
        argv.extend(args.connect.argv());
        argv.push("--log-file".into());
        argv.push(log.clone().into());
        argv.push(args.mountpoint.clone().into());
        let program = std::env::current_exe().context("finding the musicfs executable")?;
        let pid = spawn_detached(&program, &argv, &args.mountpoint, args.nonempty, &log)?;
        if global.json {
            let path = args
                .mountpoint
                .canonicalize()
                .unwrap_or_else(|_| args.mountpoint.clone());
            print_mounted(&path, pid, Some(&log));
        } else if !global.quiet {
            eprintln!(
                "musicfs: mounted on {} (pid {pid}); log: {}; unmount with `fusermount3 -u {}`",
                args.mountpoint.display(),
                log.display(),
                shell_quoted(&args.mountpoint)
            );
        }
        return Ok(exit::OK);
    }
    let repo = global.open_repo()?;
    let (quiet, json) = (global.quiet, global.json);
    mount(repo, &args.mountpoint, options, |mounted| {
        if json {
            print_mounted(
                &mounted.path,
                std::process::id(),
                global.log_file.as_deref(),
            );
        } else if !quiet {
            eprintln!(
                "musicfs: mounted on {}; Ctrl-C, SIGTERM or `fusermount3 -u` unmounts",
                mounted.path.display()
            );
        }
        if args.report_ready {
            let mut out = std::io::stdout().lock();
            out.write_all(mounted.ready_line().as_bytes())?;
            out.flush()?;
        }
        Ok(())
    })
    .with_context(|| format!("mounting on {}", args.mountpoint.display()))?;
    Ok(exit::OK)
}

/// The JSON line of a mount that is up: `{"type": "mounted", "mountpoint", "pid", "log"}`.
fn print_mounted(mountpoint: &Path, pid: u32, log: Option<&Path>) {
    crate::report::print_json(&json!({
        "type": "mounted",
        "mountpoint": mountpoint.to_string_lossy(),
        "pid": pid,
        "log": log.map(|l| l.to_string_lossy()),
    }));
}
