//! The part planner: plain uploads, and plans built from the old object's runs.

use proptest::prelude::*;

use super::*;

const MIB: u64 = 1024 * 1024;

fn run(offset: u64, from: u64, len: u64) -> KnownRun {
    KnownRun { offset, from, len }
}

/// Every property a plan must have whatever the runs: parts in order covering the file,
/// every part but the last at least MIN_PART, none over MAX_PART, each copied part inside a
/// run at the same shift, at most MAX_PARTS.
fn check(len: u64, known: &[KnownRun], parts: &[Part]) {
    assert!(!parts.is_empty());
    assert!(parts.len() as u64 <= MAX_PARTS);
    let mut at = 0;
    for (i, part) in parts.iter().enumerate() {
        let (offset, plen) = match *part {
            Part::Upload { offset, len } => (offset, len),
            Part::Copy { offset, from, len } => {
                assert!(
                    known.iter().any(|r| r.offset <= offset
                        && offset + len <= r.offset + r.len
                        && from == r.from + (offset - r.offset)),
                    "{part:?} lies in no run of {known:?}"
                );
                (offset, len)
            }
        };
        assert_eq!(offset, at, "{parts:?}");
        assert!(plen > 0 && plen <= MAX_PART, "{parts:?}");
        if i + 1 < parts.len() {
            assert!(plen >= MIN_PART, "part {i} is short: {parts:?}");
        }
        at += plen;
    }
    assert_eq!(at, len, "{parts:?}");
}

fn copied(parts: &[Part]) -> u64 {
    parts
        .iter()
        .filter(|p| matches!(p, Part::Copy { .. }))
        .map(Part::len)
        .sum()
}

#[test]
fn parts_stay_within_the_limit() {
    assert_eq!(part_size(20 * MIB), PART_SIZE);
    let huge = 200 * 1024 * MIB;
    assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
    assert!(part_size(huge) > PART_SIZE);
}

#[test]
fn a_plain_upload_is_eight_mib_parts_and_the_rest() {
    let len = 20 * MIB + 12_345;
    let parts = upload_parts(len);
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[2],
        Part::Upload {
            offset: 16 * MIB,
            len: 4 * MIB + 12_345
        }
    );
    check(len, &[], &parts);
}

#[test]
fn nothing_known_or_a_small_file_is_no_plan() {
    assert_eq!(plan_parts(24 * MIB, &[], PART_SIZE), None);
    // Under two parts: one PUT whatever the old object holds.
    assert_eq!(
        plan_parts(10 * MIB - 1, &[run(0, 0, 10 * MIB - 1)], PART_SIZE),
        None
    );
    // Runs under MIN_PART are not worth a copy.
    let short = [run(0, 0, MIN_PART - 1), run(6 * MIB, 6 * MIB, 4 * MIB)];
    assert_eq!(plan_parts(24 * MIB, &short, PART_SIZE), None);
}

#[test]
fn a_grown_tag_sends_one_padded_part_and_copies_the_rest() {
    // The tag grew from 4,000 to 4,300 bytes: everything after it moved by 300.
    let len = 24 * MIB + 300;
    let known = [run(4_300, 4_000, len - 4_300)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    assert_eq!(
        parts,
        [
            Part::Upload {
                offset: 0,
                len: MIN_PART
            },
            Part::Copy {
                offset: MIN_PART,
                from: MIN_PART - 300,
                len: len - MIN_PART
            },
        ]
    );
    check(len, &known, &parts);
}

#[test]
fn a_change_in_the_middle_is_padded_from_the_run_after_it() {
    let len = 30 * MIB;
    let known = [
        run(0, 0, 10 * MIB),
        run(10 * MIB + 100, 10 * MIB + 50, 20 * MIB - 100),
    ];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    assert_eq!(
        parts,
        [
            Part::Copy {
                offset: 0,
                from: 0,
                len: 10 * MIB
            },
            Part::Upload {
                offset: 10 * MIB,
                len: MIN_PART
            },
            Part::Copy {
                offset: 15 * MIB,
                from: 15 * MIB - 50,
                len: 15 * MIB
            },
        ]
    );
    check(len, &known, &parts);
}

#[test]
fn padding_takes_from_the_run_before_when_the_one_after_is_short() {
    // After the change, only 6 MiB are known: 1 MiB to spare; the rest comes from before.
    let len = 30 * MIB;
    let known = [run(0, 0, 23 * MIB), run(24 * MIB, 24 * MIB, 6 * MIB)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    check(len, &known, &parts);
    assert_eq!(
        parts[1],
        Part::Upload {
            offset: 20 * MIB,
            len: MIN_PART
        }
    );
    assert_eq!(copied(&parts), len - MIN_PART);
}

#[test]
fn a_run_that_cannot_spare_the_padding_is_sent_instead() {
    // Two runs of 6 MiB around a 10-byte change: 2 MiB to spare, 5 MiB needed.
    let len = 12 * MIB + 10;
    let known = [run(0, 0, 6 * MIB), run(6 * MIB + 10, 6 * MIB, 6 * MIB)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    check(len, &known, &parts);
    assert_eq!(
        parts,
        [
            Part::Copy {
                offset: 0,
                from: 0,
                len: 6 * MIB
            },
            Part::Upload {
                offset: 6 * MIB,
                len: 6 * MIB + 10
            },
        ]
    );
}

#[test]
fn a_short_change_at_the_end_is_a_short_last_part() {
    let len = 20 * MIB + 7;
    let known = [run(0, 0, 20 * MIB)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    assert_eq!(
        parts.last(),
        Some(&Part::Upload {
            offset: 20 * MIB,
            len: 7
        })
    );
    check(len, &known, &parts);
}

#[test]
fn a_long_changed_stretch_goes_in_parts_none_short() {
    // 8 MiB + 1 and 17 MiB of new bytes between copies: never a sent part under 5 MiB.
    let len = 60 * MIB;
    let known = [
        run(0, 0, 10 * MIB),
        run(18 * MIB + 1, 0, 10 * MIB),
        run(45 * MIB + 1, 0, 15 * MIB - 1),
    ];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    check(len, &known, &parts);
    assert_eq!(copied(&parts), 35 * MIB - 1);
}

#[test]
fn an_unchanged_file_is_one_copy() {
    let len = 40 * MIB;
    let known = [run(0, 0, len)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    assert_eq!(
        parts,
        [Part::Copy {
            offset: 0,
            from: 0,
            len
        }]
    );
}

#[test]
fn overlapping_or_overlong_runs_are_clipped() {
    let len = 20 * MIB;
    let known = [run(0, 0, 12 * MIB), run(8 * MIB, 100, 30 * MIB)];
    let parts = plan_parts(len, &known, PART_SIZE).expect("a plan");
    check(len, &known, &parts);
}

proptest! {
    #[test]
    fn any_runs_give_a_valid_plan_or_none(
        len in 0u64..(80 * MIB),
        cuts in proptest::collection::vec((0u64..(80 * MIB), 0u64..(30 * MIB), 0u64..(100 * MIB)), 0..8),
    ) {
        // Runs in file order, not overlapping.
        let mut cuts = cuts;
        cuts.sort();
        let mut known = Vec::new();
        let mut at = 0;
        for (offset, run_len, from) in cuts {
            let offset = offset.max(at);
            let end = (offset + run_len).min(len);
            if end > offset {
                known.push(run(offset, from, end - offset));
                at = end;
            }
        }
        if let Some(parts) = plan_parts(len, &known, PART_SIZE) {
            check(len, &known, &parts);
            prop_assert!(copied(&parts) > 0);
        }
    }
}
