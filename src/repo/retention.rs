//! Retention: which snapshots a policy keeps, and why (`musicfs forget`).
//!
//! Pure: given the times of one origin's snapshots and a [`Policy`], [`apply`] says which to
//! keep and for what reasons. It follows restic's `forget` (its `ApplyPolicy`, documented in
//! restic's "Removing snapshots according to a policy"), so that people who know restic's flags
//! get what they expect:
//!
//! - Snapshots are taken newest first. `--keep-last N` keeps the N newest.
//! - `--keep-hourly/daily/weekly/monthly/yearly N` keep, for each of the last N hours, days,
//!   ISO weeks, months or years *that hold a snapshot*, the newest snapshot in it; an empty
//!   bucket is not counted. Buckets are calendar periods in the given time zone (the local
//!   one for the CLI), so a daily snapshot is the newest of a local day.
//! - When a rule still has count left after the newest-first walk reached the oldest snapshot,
//!   that oldest snapshot is kept too ("oldest daily snapshot"): restic does this since 0.17 to
//!   keep the longest history the counts allow.
//! - A snapshot kept by any rule is kept, with every rule that kept it as a reason. `unlimited`
//!   (restic's `-1`) keeps one per bucket however many there are.
//!
//! This module never touches the repository: `gc.rs` applies the verdicts.

use std::fmt;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Serialize;

/// How many buckets a rule keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The newest N buckets that hold a snapshot.
    Count(u32),
    /// Every bucket.
    All,
}

impl std::str::FromStr for Keep {
    type Err = String;

    /// `N` (a positive count) or `unlimited`.
    fn from_str(text: &str) -> Result<Keep, String> {
        if text.eq_ignore_ascii_case("unlimited") || text == "-1" {
            return Ok(Keep::All);
        }
        match text.parse::<u32>() {
            Ok(0) => Err("0 keeps nothing: give a count of 1 or more, or unlimited".into()),
            Ok(n) => Ok(Keep::Count(n)),
            Err(_) => Err(format!("{text:?} is not a count (1, 2, … or unlimited)")),
        }
    }
}

/// A retention policy: each rule unset (`None`) or a [`Keep`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--keep-last`.
    pub last: Option<Keep>,
    /// `--keep-hourly`.
    pub hourly: Option<Keep>,
    /// `--keep-daily`.
    pub daily: Option<Keep>,
    /// `--keep-weekly` (ISO 8601 weeks, Monday to Sunday).
    pub weekly: Option<Keep>,
    /// `--keep-monthly`.
    pub monthly: Option<Keep>,
    /// `--keep-yearly`.
    pub yearly: Option<Keep>,
}

impl Policy {
    /// Whether no rule is set: such a policy would remove everything, and is refused.
    pub fn is_empty(&self) -> bool {
        self.rules().iter().all(|(_, keep)| keep.is_none())
    }

    fn rules(&self) -> [(Rule, Option<Keep>); 6] {
        [
            (Rule::Last, self.last),
            (Rule::Hourly, self.hourly),
            (Rule::Daily, self.daily),
            (Rule::Weekly, self.weekly),
            (Rule::Monthly, self.monthly),
            (Rule::Yearly, self.yearly),
        ]
    }
}

/// One rule of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// `--keep-last`.
    Last,
    /// `--keep-hourly`.
    Hourly,
    /// `--keep-daily`.
    Daily,
    /// `--keep-weekly`.
    Weekly,
    /// `--keep-monthly`.
    Monthly,
    /// `--keep-yearly`.
    Yearly,
}

impl Rule {
    fn word(self) -> &'static str {
        match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
        }
    }

    /// The bucket of a snapshot at `time` (the `nr`th newest): equal buckets are one period.
    fn bucket(self, time: &jiff::ZonedDateTime, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(time.year()),
            i64::from(time.month()),
            i64::from(time.day()),
            i64::from(time.hour()),
        );
        match self {
            Rule::Last => nr as i64,
            Rule::Hourly => ((y * 100 + m) * 100 + d) * 100 + h,
            Rule::Daily => (y * 100 + m) * 100 + d,
            Rule::Weekly => {
                let week = time.iso_week_date();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Rule::Monthly => y * 100 + m,
            Rule::Yearly => y,
        }
    }
}

/// Why a snapshot is kept: a rule, and whether as the oldest snapshot of a rule with count
/// left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    /// The rule that keeps it.
    pub rule: Rule,
    /// Kept as the oldest snapshot, its bucket already counted, because the rule had count
    /// left.
    pub oldest: bool,
}

impl fmt::Display for Reason {
    /// As restic words it: `daily snapshot`, `oldest monthly snapshot`, `last snapshot`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.oldest {
            write!(f, "oldest ")?;
        }
        write!(f, "{} snapshot", self.rule.word())
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The verdict on one snapshot: kept when `reasons` is not empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Every rule that keeps it, in the policy's order (last, hourly, … yearly).
    pub reasons: Vec<Reason>,
}

impl Verdict {
    /// Whether the snapshot is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The verdict on each of `times` (nanoseconds since the epoch, in any order), index for
/// index, under `policy`, with calendar buckets in `zone`. Equal times are ordered by index,
/// the higher index taken as the newer (the repository lists snapshots in the order they were
/// recorded). An empty policy keeps nothing; callers refuse it first.
pub fn apply(times: &[i64], policy: &Policy, zone: &TimeZone) -> Vec<Verdict> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|&a, &b| times[b].cmp(&times[a]).then(b.cmp(&a)));
    let mut verdicts = vec![
        Verdict {
            reasons: Vec::new()
        };
        times.len()
    ];
    struct Bucket {
        rule: Rule,
        left: Option<u32>,
        last: Option<i64>,
    }
    let mut buckets: Vec<Bucket> = policy
        .rules()
        .iter()
        .filter_map(|&(rule, keep)| {
            keep.map(|keep| Bucket {
                rule,
                left: match keep {
                    Keep::Count(n) => Some(n),
                    Keep::All => None,
                },
                last: None,
            })
        })
        .collect();
    let oldest = order.len().saturating_sub(1);
    for (nr, &index) in order.iter().enumerate() {
        let time = local_time(times[index], zone);
        for bucket in &mut buckets {
            if bucket.left == Some(0) {
                continue;
            }
            let value = bucket.rule.bucket(&time, nr);
            let new_bucket = bucket.last != Some(value);
            if new_bucket || nr == oldest {
                bucket.last = Some(value);
                if let Some(left) = &mut bucket.left {
                    *left -= 1;
                }
                verdicts[index].reasons.push(Reason {
                    rule: bucket.rule,
                    oldest: !new_bucket,
                });
            }
        }
    }
    verdicts
}

/// `ns` (nanoseconds since the epoch) in `zone`, as the buckets see it; a time beyond jiff's
/// range (years ±9999) is taken at that range's end.
pub fn local_time(ns: i64, zone: &TimeZone) -> jiff::ZonedDateTime {
    let ts = Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(if ns < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    ts.to_zoned_datetime(zone.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::Offset;

    const HOUR: i64 = 3_600_000_000_000;
    const DAY: i64 = 24 * HOUR;

    /// Nanoseconds of a UTC date and hour.
    fn at(text: &str) -> i64 {
        let ts: Timestamp = text.parse().expect("timestamp");
        ts.as_nanosecond() as i64
    }

    fn kept(times: &[i64], policy: &Policy, zone: &TimeZone) -> Vec<usize> {
        apply(times, policy, zone)
            .iter()
            .enumerate()
            .filter(|(_, v)| v.keep())
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn keep_last_keeps_the_newest_n_whatever_the_order() {
        let times = [
            at("2025-01-03T00:00Z"),
            at("2025-01-01T00:00Z"),
            at("2025-01-02T00:00Z"),
        ];
        let policy = Policy {
            last: Some(Keep::Count(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![0, 2]);
        let reasons = &apply(&times, &policy, &TimeZone::UTC)[0].reasons;
        assert_eq!(reasons[0].to_string(), "last snapshot");
    }

    #[test]
    fn a_day_with_several_snapshots_counts_once_and_keeps_its_newest() {
        // Two on the 3rd, none on the 2nd, two on the 1st.
        let times = [
            at("2025-01-01T08:00Z"),
            at("2025-01-01T20:00Z"),
            at("2025-01-03T08:00Z"),
            at("2025-01-03T20:00Z"),
        ];
        let policy = Policy {
            daily: Some(Keep::Count(2)),
            ..Policy::default()
        };
        // The 3rd's and the 1st's newest: the empty 2nd is not a bucket.
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![1, 3]);
    }

    #[test]
    fn count_left_keeps_the_oldest_snapshot_too() {
        // Three snapshots in one month, keep-monthly 3: the month's newest, then, with two
        // counts left, the oldest as "oldest monthly snapshot".
        let times = [
            at("2025-05-01T00:00Z"),
            at("2025-05-10T00:00Z"),
            at("2025-05-20T00:00Z"),
        ];
        let policy = Policy {
            monthly: Some(Keep::Count(3)),
            ..Policy::default()
        };
        let verdicts = apply(&times, &policy, &TimeZone::UTC);
        assert_eq!(verdicts[2].reasons[0].to_string(), "monthly snapshot");
        assert!(!verdicts[1].keep());
        assert_eq!(
            verdicts[0].reasons[0].to_string(),
            "oldest monthly snapshot"
        );
        // With exactly enough count, the oldest is kept for its own bucket, not as oldest.
        let times = [at("2025-04-01T00:00Z"), at("2025-05-01T00:00Z")];
        let verdicts = apply(&times, &policy, &TimeZone::UTC);
        assert_eq!(verdicts[0].reasons[0].to_string(), "monthly snapshot");
    }

    #[test]
    fn weeks_are_iso_weeks() {
        // Sunday 2025-12-28 is in 2025-W52; Monday 2025-12-29 and Thursday 2026-01-01 are
        // both in 2026-W01.
        let times = [
            at("2025-12-28T12:00Z"),
            at("2025-12-29T12:00Z"),
            at("2026-01-01T12:00Z"),
        ];
        let policy = Policy {
            weekly: Some(Keep::Count(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![0, 2]);
        // keep-yearly counts calendar years, not ISO years: the 28th and the 29th are both in
        // 2025.
        let policy = Policy {
            yearly: Some(Keep::Count(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![1, 2]);
    }

    #[test]
    fn buckets_are_local_days() {
        // 01:00 UTC and 23:00 UTC the day before: the same day at UTC-5, two days in UTC.
        let times = [at("2025-03-01T23:00Z"), at("2025-03-02T01:00Z")];
        let policy = Policy {
            daily: Some(Keep::Count(1)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![1]);
        let new_york_winter = TimeZone::fixed(Offset::constant(-5));
        assert_eq!(kept(&times, &policy, &new_york_winter), vec![1]);
        let policy = Policy {
            daily: Some(Keep::Count(2)),
            ..Policy::default()
        };
        assert_eq!(kept(&times, &policy, &TimeZone::UTC), vec![0, 1]);
        // At UTC-5 both are on March 1st: one bucket, its newest, and the oldest with count
        // left.
        let verdicts = apply(&times, &policy, &new_york_winter);
        assert_eq!(verdicts[1].reasons[0].to_string(), "daily snapshot");
        assert_eq!(verdicts[0].reasons[0].to_string(), "oldest daily snapshot");
    }

    #[test]
    fn every_rule_that_keeps_a_snapshot_is_a_reason_and_unlimited_keeps_every_bucket() {
        let times: Vec<i64> = (0..48)
            .map(|h| at("2025-06-01T00:00Z") + h * HOUR)
            .collect();
        let policy = Policy {
            last: Some(Keep::Count(1)),
            hourly: Some(Keep::All),
            daily: Some(Keep::Count(1)),
            ..Policy::default()
        };
        let verdicts = apply(&times, &policy, &TimeZone::UTC);
        assert!(verdicts.iter().all(Verdict::keep));
        let words: Vec<String> = verdicts[47].reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            words,
            ["last snapshot", "hourly snapshot", "daily snapshot"]
        );
        assert_eq!(verdicts[0].reasons.len(), 1);
    }

    #[test]
    fn equal_times_take_the_later_recorded_as_newer() {
        let t = at("2025-06-01T00:00Z");
        let policy = Policy {
            last: Some(Keep::Count(1)),
            ..Policy::default()
        };
        assert_eq!(kept(&[t, t, t], &policy, &TimeZone::UTC), vec![2]);
    }

    #[test]
    fn extreme_times_and_empty_inputs_do_not_panic() {
        let policy = Policy {
            hourly: Some(Keep::Count(3)),
            weekly: Some(Keep::All),
            ..Policy::default()
        };
        assert!(apply(&[], &policy, &TimeZone::UTC).is_empty());
        let verdicts = apply(&[i64::MIN, i64::MAX, 0, DAY], &policy, &TimeZone::UTC);
        assert_eq!(verdicts.len(), 4);
        assert!(verdicts[1].keep());
        assert!(Policy::default().is_empty());
        assert!(!policy.is_empty());
    }

    #[test]
    fn counts_parse_as_restic_writes_them() {
        assert_eq!("3".parse::<Keep>(), Ok(Keep::Count(3)));
        assert_eq!("unlimited".parse::<Keep>(), Ok(Keep::All));
        assert_eq!("-1".parse::<Keep>(), Ok(Keep::All));
        assert!("0".parse::<Keep>().is_err());
        assert!("x".parse::<Keep>().is_err());
    }
}
