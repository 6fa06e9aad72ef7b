//! `musicfs forget`: parses the policy, prints what was kept and removed.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use jiff::tz::TimeZone;
use serde_json::json;

use super::{exit, print_summary, ConnectArgs, GlobalArgs};
use crate::error::Error;
use crate::origin::OriginSpec;
use crate::repo::retention::{self, Keep, Policy};
use crate::repo::{ForgetReport, Judged};
use crate::report::print_json;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Only the snapshots of this origin, named as for `musicfs snapshots ORIGIN` [default:
    /// every origin, each judged on its own]; or a chunk store, s3://BUCKET/PREFIX, whose
    /// libraries each keep their --keep-last newest snapshots

    #[arg(value_name = "ORIGIN")]
    pub origin: Option<PathBuf>,
    /// Keep the N newest snapshots
    #[arg(short = 'l', long, value_name = "N")]
    pub keep_last: Option<Keep>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(short = 'H', long, value_name = "N")]
    pub keep_hourly: Option<Keep>,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(short = 'd', long, value_name = "N")]
    pub keep_daily: Option<Keep>,
    /// Keep the newest snapshot of each of the last N ISO weeks (Monday to Sunday) that have
    /// one
    #[arg(short = 'w', long, value_name = "N")]
    pub keep_weekly: Option<Keep>,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(short = 'm', long, value_name = "N")]
    pub keep_monthly: Option<Keep>,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(short = 'y', long, value_name = "N")]
    pub keep_yearly: Option<Keep>,
    /// Print what would be kept and removed; remove nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(global: &GlobalArgs, args: &ForgetArgs) -> anyhow::Result<u8> {
    let policy = Policy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
    };
    if policy.is_empty() {
        return Err(Error::InvalidInput(
            "no policy given: name at least one of --keep-last, --keep-hourly, --keep-daily, \
             --keep-weekly, --keep-monthly, --keep-yearly (nothing was removed)"
                .into(),
        )
        .into());
    }
    if let Some(arg) = &args.origin {
        if let Some(store) =
            super::store::open_store(global, arg.as_os_str(), &args.connect.open_options(false))?
        {
            let only_last = Policy {
                last: None,
                ..policy
            };
            let keep_last = match (args.keep_last, only_last.is_empty()) {
                (Some(Keep::Count(n)), true) => n as usize,
                (Some(Keep::All), true) => usize::MAX,
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "{}: a chunk store keeps the newest snapshots of each library: --keep-last N is its only policy",
                        arg.display()
                    ))
                    .into())
                }
            };
            return super::store::forget(global, &store, keep_last, args.dry_run);
        }
    }
    let spec = args
        .origin
        .as_ref()
        .map(|o| OriginSpec::parse(o.as_os_str()))
        .transpose()?;
    let repo = global.open_repo()?;
    let origin = match (&args.origin, spec) {
        (Some(arg), Some(spec)) => {
            let snapshots = repo.snapshots()?;
            let url = super::snapshots::recorded_origin(arg, &spec, &snapshots, &args.connect)?;
            if !snapshots.iter().any(|(_, r)| r.origin == url) {
                return Err(Error::InvalidInput(format!(
                    "{}: the repository has no snapshot of this origin (musicfs snapshots lists \
                     them)",
                    arg.display()
                ))
                .into());
            }
            Some(url)
        }
        _ => None,
    };
    let zone = TimeZone::system();
    let report = repo
        .forget(origin.as_deref(), &policy, &zone, args.dry_run)
        .with_context(|| format!("forget in repository {}", repo.root().display()))?;
    if global.json {
        print_json_report(&report);
    } else if !global.quiet {
        print_text(&report, &zone);
    }
    Ok(exit::OK)
}

fn print_json_report(report: &ForgetReport) {
    let (mut kept, mut removed) = (0, 0);
    for origin in &report.origins {
        for (kind, list) in [("keep", &origin.keep), ("remove", &origin.remove)] {
            for j in list {
                print_json(&json!({
                    "type": kind,
                    "id": j.id.to_hex(),
                    "origin": j.record.origin,
                    "time": j.record.time_ns.div_euclid(1_000_000_000),
                    "files": j.record.files,
                    "bytes": j.record.bytes,
                    "reasons": j.reasons,
                }));
            }
        }
        kept += origin.keep.len();
        removed += origin.remove.len();
    }
    let _ = print_summary(&json!({
        "snapshots_kept": kept,
        "snapshots_removed": removed,
        "dry_run": report.dry_run,
    }));
}

fn print_text(report: &ForgetReport, zone: &TimeZone) {
    let zone_name = zone.iana_name().unwrap_or("local time");
    let line = |j: &Judged| {
        let time = retention::local_time(j.record.time_ns, zone)
            .strftime("%Y-%m-%d %H:%M:%S %:z")
            .to_string();
        let line = format!("  {}  {time}  {}", j.id.short(), j.reasons.join(", "));
        line.trim_end().to_string()
    };
    let (mut kept, mut removed) = (0, 0);
    for origin in &report.origins {
        println!(
            "snapshots of {} (days and weeks in {zone_name}):",
            origin.origin
        );
        println!("keep {}:", snapshots(origin.keep.len()));
        origin.keep.iter().for_each(|j| println!("{}", line(j)));
        if !origin.remove.is_empty() {
            let verb = if report.dry_run {
                "would remove"
            } else {
                "remove"
            };
            println!("{verb} {}:", snapshots(origin.remove.len()));
            origin.remove.iter().for_each(|j| println!("{}", line(j)));
        }
        kept += origin.keep.len();
        removed += origin.remove.len();
    }
    let kept = snapshots(kept);
    if report.dry_run {
        println!("dry run: {kept} kept, {removed} would be removed; nothing removed");
    } else if removed > 0 {
        println!("{kept} kept, {removed} removed; musicfs gc frees what only they referred to");
    } else {
        println!("{kept} kept, none removed");
    }
}

/// `1 snapshot`, `2 snapshots`.
fn snapshots(n: usize) -> String {
    if n == 1 {
        "1 snapshot".into()
    } else {
        format!("{n} snapshots")
    }
}
