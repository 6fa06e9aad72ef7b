//! How a plain mirror keeps what S3 objects do not have: a file's mtime and mode in user
//! metadata, in the form rclone writes and reads, so that rclone and musicfs share a bucket;
//! and which keys a plain mirror can carry as paths at all.
//!
//! - `mtime`: seconds since the epoch in decimal, with the fraction to the nanosecond
//!   (`1700000000.123456789`; before 1970 negative, `-86400.000000001`). rclone writes this
//!   form; an RFC 3339 time is read too. An object without it (put there by another tool) has
//!   its `LastModified`.
//! - `mode`: the permission bits in octal with the regular file type bits, as rclone's
//!   metadata has it (`100644`); read with or without them.
//!
//! Keys with ASCII control characters are refused both ways: XML 1.0, in which every
//! listing comes, cannot carry most of them, and S3-compatible servers lose them.
//!
//! Never does: talk to the network.

/// The user metadata key of the mtime.
pub(crate) const MTIME: &str = "mtime";
/// The user metadata key of the mode.
pub(crate) const MODE: &str = "mode";
/// The mode of an object without `mode` metadata, and of every directory.
pub(crate) const DEFAULT_FILE_MODE: u32 = 0o644;
/// The mode given to directories, which a bucket does not store.
pub(crate) const DIR_MODE: u32 = 0o755;
/// The longest key S3 takes, in bytes.
pub(crate) const KEY_MAX: usize = 1024;
/// The longest name (one component of a key) a plain mirror carries: what the file systems
/// it is mirrored to take.
pub(crate) const NAME_MAX: usize = 255;

/// `mtime_ns` in rclone's `mtime` form.
pub(crate) fn format_mtime(mtime_ns: i64) -> String {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let nanos = mtime_ns.rem_euclid(1_000_000_000);
    if secs < 0 && nanos > 0 {
        // -1.5 s is secs -2 and nanos 500_000_000: written as -1.500000000.
        let back = 1_000_000_000 - nanos;
        let whole = secs + 1;
        if whole == 0 {
            return format!("-0.{back:09}");
        }
        return format!("{whole}.{back:09}");
    }
    format!("{secs}.{nanos:09}")
}

/// An `mtime` value as ns since the epoch: decimal seconds with up to nine fraction digits
/// (more are cut), or RFC 3339. `None` when it is neither, or out of range.
pub(crate) fn parse_mtime(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Some(ns) = parse_decimal(text) {
        return Some(ns);
    }
    let time: jiff::Timestamp = text.parse().ok()?;
    i64::try_from(time.as_nanosecond()).ok()
}

fn parse_decimal(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, b) in fraction.bytes().take(9).enumerate() {
        nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
    }
    let magnitude = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `mode` as rclone's metadata writes it: the regular file type bits and the permission bits
/// in octal.
pub(crate) fn format_mode(mode: u32) -> String {
    format!("{:o}", 0o100_000 | (mode & 0o7777))
}

/// A `mode` value's permission bits (set-id and sticky included); `None` when it is not octal.
pub(crate) fn parse_mode(text: &str) -> Option<u32> {
    let text = text.trim();
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().map(|m| m & 0o7777)
}

/// Why a key, relative to the origin's prefix, cannot be a path of a plain mirror; `None`
/// when it can. Hostile keys (`..`, `.`, an absolute or empty component, NUL) are never
/// followed; neither is one too long for the file systems a mirror is copied to.
pub(crate) fn bad_key(rel: &[u8]) -> Option<&'static str> {
    if rel.is_empty() {
        return Some("an empty key");
    }
    if rel.starts_with(b"/") {
        return Some("an absolute key (a leading `/`)");
    }
    if rel.len() > KEY_MAX {
        return Some("a key longer than 1024 bytes");
    }
    if std::str::from_utf8(rel).is_err() {
        return Some("a key that is not UTF-8");
    }
    if rel.iter().any(u8::is_ascii_control) {
        // XML 1.0 (every S3 listing) cannot carry most of them, and servers lose them.
        return Some("a key with a control character");
    }
    for name in rel.split(|&b| b == b'/') {
        if let Some(why) = crate::relpath::bad_name(name) {
            return Some(match why {
                "an empty name" => "an empty component (`//` or a trailing `/`)",
                other => other,
            });
        }
        if name.len() > NAME_MAX {
            return Some("a name longer than 255 bytes");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimes_round_trip_in_rclones_form() {
        for (ns, text) in [
            (1_700_000_000_123_456_789, "1700000000.123456789"),
            (0, "0.000000000"),
            (1, "0.000000001"),
            (-1, "-0.000000001"),
            (-86_400_000_000_001, "-86400.000000001"),
            (-1_500_000_000, "-1.500000000"),
            (-2_000_000_000, "-2.000000000"),
        ] {
            assert_eq!(format_mtime(ns), text);
            assert_eq!(parse_mtime(text), Some(ns), "{text}");
        }
    }

    #[test]
    fn mtimes_other_tools_write_are_read() {
        assert_eq!(parse_mtime("1700000000"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_mtime("1700000000.5"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_mtime("1700000000.1234567891234"),
            Some(1_700_000_000_123_456_789),
            "digits past the nanosecond are cut"
        );
        assert_eq!(
            parse_mtime("2023-11-14T22:13:20.25Z"),
            Some(1_700_000_000_250_000_000)
        );
        for bad in [
            "",
            ".",
            "-",
            "1e9",
            "12a",
            "1.2.3",
            "99999999999999999999",
            "--1",
        ] {
            assert_eq!(parse_mtime(bad), None, "{bad}");
        }
    }

    #[test]
    fn modes_are_octal_with_or_without_file_type() {
        assert_eq!(format_mode(0o644), "100644");
        assert_eq!(format_mode(0o4755), "104755");
        assert_eq!(parse_mode("100644"), Some(0o644));
        assert_eq!(parse_mode("0100664"), Some(0o664));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        for bad in ["", "9", "rw-r--r--", "1234567012345670"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_keys_are_refused() {
        for ok in [&b"a"[..], b"a/b.flac", b"..a/b..", b".hidden/x"] {
            assert_eq!(bad_key(ok), None, "{}", ok.escape_ascii());
        }
        let long_name = vec![b'n'; 256];
        let long_key = [&b"d/"[..]; 600].concat();
        for bad in [
            &b""[..],
            b"../x",
            b"a/../x",
            b"./x",
            b"a/.",
            b"/abs",
            b"a//b",
            b"a/",
            b"a\0b",
            b"new\nline",
            b"tab\there",
            b"\xff",
            &long_name,
            &long_key,
        ] {
            assert!(bad_key(bad).is_some(), "{}", bad.escape_ascii());
        }
    }
}
