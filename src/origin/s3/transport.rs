//! The S3 transport in the registry: `s3://BUCKET[/PREFIX]`, and how it is opened.
//!
//! The bucket name follows S3's rules (3 to 63 lower-case letters, digits, `.` and `-`,
//! starting and ending with a letter or digit); the prefix is a relative path whose components
//! are names (no `.`, `..` or empty component), written without a trailing `/`. Parsing
//! connects to nothing; opening builds a client from the AWS environment or the credentials
//! file given in [`OpenOptions::s3_credentials`] and asks the bucket (HeadBucket) once.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use super::client;
use super::meta;
use super::origin::{Bucket, S3Origin};
use crate::error::{Error, Result};
use crate::origin::registry::{Location, OpenOptions, Transport};
use crate::origin::{Origin, Policy, WritableOrigin};

/// The S3 transport's entry in the registry.
pub(crate) static TRANSPORT: Transport = Transport {
    name: "s3",
    schemes: &["s3"],
    parse: parse_location,
};

/// An S3 origin argument: a bucket and a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The prefix, without leading or trailing `/`; empty for the whole bucket.
    pub prefix: String,
}

impl S3Location {
    /// `s3://bucket/prefix`, the name the repository knows the origin by.
    pub fn url(&self) -> String {
        match self.prefix.is_empty() {
            true => format!("s3://{}", self.bucket),
            false => format!("s3://{}/{}", self.bucket, self.prefix),
        }
    }

    /// The error of a connection to this location that failed with `e`: `Unreachable` (which
    /// the connection policy retries) when transient, bad input otherwise.
    pub(crate) fn connect_error(&self, e: io::Error) -> Error {
        match crate::error::io_kind(&e) {
            crate::error::ErrorKind::Transient => Error::Unreachable {
                origin: self.url(),
                message: e.to_string(),
            },
            _ => Error::InvalidInput(format!("{}: {e}", self.url())),
        }
    }

    /// A client for this location's bucket and prefix, as `options` configure it (no request
    /// made yet).
    pub(crate) fn bucket(&self, options: &OpenOptions) -> Result<Bucket> {
        let client = client::build(
            options.s3_credentials.as_ref(),
            options.connect_timeout,
            options.io_timeout,
        )
        .map_err(|e| self.connect_error(e))?;
        Ok(Bucket {
            client,
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            url: self.url(),
        })
    }

    /// Builds the client and checks the bucket (and, when `readable`, that the prefix holds
    /// something), retrying a connection that fails for a transient reason.
    fn connect(&self, options: &OpenOptions, readable: bool) -> Result<S3Origin> {
        let url = self.url();
        let unreachable = |e: io::Error| self.connect_error(e);
        Policy::connections(options.retries)
            .run(|| {
                let bucket = self.bucket(options)?;
                let prefix = bucket.dir_prefix(b"");
                let key = bucket.key(b"");
                let checked = client::block_on(async {
                    bucket.check_bucket().await?;
                    if !bucket.prefix.is_empty() && bucket.head(&key).await?.is_some() {
                        return Ok(Some("an object, not a prefix of objects"));
                    }
                    if readable && !bucket.prefix.is_empty() && !bucket.any_below(&prefix).await? {
                        return Ok(Some("no object has this prefix"));
                    }
                    Ok(None)
                })
                .and_then(|r| r)
                .map_err(unreachable)?;
                match checked {
                    Some(why) => Err(Error::InvalidInput(format!("{url}: {why}"))),
                    None => Ok(S3Origin::new(bucket)),
                }
            })
            .map_err(crate::interrupt::explain)
    }
}

impl Location for S3Location {
    fn transport(&self) -> &'static str {
        TRANSPORT.name
    }

    fn open(&self, options: &OpenOptions) -> Result<Box<dyn Origin>> {
        Ok(Box::new(self.connect(options, true)?))
    }

    fn open_writable(&self, options: &OpenOptions) -> Result<Box<dyn WritableOrigin>> {
        Ok(Box::new(self.connect(options, false)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn parse_location(arg: &OsStr, scheme: Option<&str>) -> Result<Option<Box<dyn Location>>> {
    let Some(scheme) = scheme else {
        return Ok(None);
    };
    let bytes = arg.as_bytes();
    let shown = String::from_utf8_lossy(bytes);
    let bad = |why: String| Error::InvalidInput(format!("{shown}: {why}"));
    let rest = bytes.get(scheme.len() + "://".len()..).unwrap_or_default();
    let rest = std::str::from_utf8(rest).map_err(|_| bad("not UTF-8 (S3 keys are)".into()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(why) = bad_bucket(bucket) {
        return Err(bad(format!("bad bucket name {bucket:?}: {why}")));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty() {
        if let Some(why) = meta::bad_key(prefix.as_bytes()) {
            return Err(bad(format!("bad prefix {prefix:?}: {why}")));
        }
    }
    Ok(Some(Box::new(S3Location {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })))
}

/// Why `name` is not a bucket name S3 accepts, or `None`.
fn bad_bucket(name: &str) -> Option<&'static str> {
    let bytes = name.as_bytes();
    if bytes.len() < 3 || bytes.len() > 63 {
        return Some("3 to 63 characters");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Some("only lower-case letters, digits, `.` and `-`");
    }
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !edge(bytes[0]) || !edge(bytes[bytes.len() - 1]) {
        return Some("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return Some("no two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Some("not an IP address");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arg: &str) -> Result<S3Location> {
        let location = parse_location(OsStr::new(arg), Some("s3"))?.expect("an s3 location");
        Ok(location
            .as_any()
            .downcast_ref::<S3Location>()
            .expect("S3Location")
            .clone())
    }

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        let whole = parse("s3://music-bucket").unwrap();
        assert_eq!(
            (whole.bucket.as_str(), whole.prefix.as_str()),
            ("music-bucket", "")
        );
        assert_eq!(whole.url(), "s3://music-bucket");
        assert_eq!(parse("s3://music-bucket/").unwrap(), whole);
        let deep = parse("s3://b.example/lib/flac/").unwrap();
        assert_eq!(deep.prefix, "lib/flac");
        assert_eq!(deep.url(), "s3://b.example/lib/flac");
        assert_eq!(parse("s3://abc/Café ü").unwrap().prefix, "Café ü");
    }

    #[test]
    fn bad_buckets_and_prefixes_are_refused_naming_the_argument() {
        for arg in [
            "s3://",
            "s3://ab",
            "s3://Music",
            "s3://my_bucket/x",
            "s3://-abc",
            "s3://abc-",
            "s3://a..b",
            "s3://192.168.1.1",
            &format!("s3://{}", "a".repeat(64)),
            "s3://bucket/a/../b",
            "s3://bucket//x",
            "s3://bucket/./x",
        ] {
            let message = parse(arg).expect_err(arg).to_string();
            assert!(message.starts_with(arg), "{message}");
        }
        assert_eq!(
            parse_location(OsStr::new("bucket/x"), None)
                .unwrap()
                .map(|_| ()),
            None
        );
    }
}
