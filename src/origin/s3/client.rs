//! The S3 client of one origin: built from the AWS environment (or a credentials file named in
//! the config), and the one place where an SDK error becomes an [`io::Error`] of the right kind.
//!
//! Settings that matter with S3-compatible servers (moto, Garage, MinIO, Ceph): request
//! checksums only when an operation requires them (newer SDKs send CRC32 trailers that such
//! servers refuse) and response checksums likewise; path-style addressing whenever an endpoint
//! is given (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, or the shared config's `endpoint_url`),
//! since a self-hosted server has no wildcard DNS for bucket subdomains; the region from
//! `AWS_REGION` or the profile, `us-east-1` when none says. The SDK's own retries are off (one
//! attempt): [`crate::origin::Retrying`] and a sync's retry loop are the one policy, and they
//! retry what this module classifies as transient.
//!
//! Never does: put a secret into a message, a log line or `Debug` output.

use std::io;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;

use super::credentials::S3Credentials;
use crate::origin::runtime;

/// The region used when neither the environment nor a profile names one.
const DEFAULT_REGION: &str = "us-east-1";

/// Builds the client: no network traffic (credentials and region are resolved lazily or from
/// files and the environment).
pub(crate) fn build(
    credentials: Option<&S3Credentials>,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> io::Result<Client> {
    let static_credentials = credentials.map(S3Credentials::to_sdk);
    runtime::block_on(async move {
        let region = RegionProviderChain::default_provider().or_else(DEFAULT_REGION);
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(connect_timeout)
                    .read_timeout(io_timeout)
                    .build(),
            );
        if let Some(credentials) = static_credentials {
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(shared.endpoint_url().is_some())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Client::from_conf(config)
    })
}

/// Runs an SDK call on the shared runtime from a blocking thread.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> io::Result<F::Output> {
    runtime::block_on(future)
}

/// The HTTP status of a service's answer, when there was one.
pub(crate) fn status<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

/// An SDK error as an [`io::Error`] whose kind [`crate::error::io_kind`] classifies: timeouts,
/// dropped connections, unreadable answers, 5xx, 429 and S3's `SlowDown` are transient; 404
/// is `NotFound`; 403 `PermissionDenied`; the rest permanent. The message is `operation:
/// code (status): the server's message` and never carries request headers or credentials.
pub(crate) fn io_error<E>(
    operation: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> io::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = status(&e);
    match &e {
        SdkError::TimeoutError(_) => {
            io::Error::new(io::ErrorKind::TimedOut, format!("{operation}: timed out"))
        }
        SdkError::DispatchFailure(failure) => {
            let what = if failure.is_timeout() {
                return io::Error::new(io::ErrorKind::TimedOut, format!("{operation}: timed out"));
            } else if failure.is_io() {
                "connection failed"
            } else if failure.is_user() {
                return io::Error::other(format!(
                    "{operation}: cannot send the request ({})",
                    source_chain(&e)
                ));
            } else {
                "request failed"
            };
            io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("{operation}: {what} ({})", source_chain(&e)),
            )
        }
        SdkError::ResponseError(_) => io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("{operation}: unreadable answer ({})", source_chain(&e)),
        ),
        SdkError::ConstructionFailure(_) => io::Error::other(format!(
            "{operation}: cannot build the request ({})",
            source_chain(&e)
        )),
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("error");
            let message = err.message().map(|m| format!(": {m}")).unwrap_or_default();
            let status = status.unwrap_or(0);
            let text = format!("{operation}: {code} ({status}){message}");
            let kind = match (status, code) {
                (404, _) | (_, "NoSuchKey" | "NoSuchBucket" | "NotFound") => {
                    io::ErrorKind::NotFound
                }
                (403, _) => io::ErrorKind::PermissionDenied,
                (500..=599 | 429, _) | (_, "SlowDown" | "RequestTimeout" | "InternalError") => {
                    io::ErrorKind::ConnectionAborted
                }
                _ => io::ErrorKind::Other,
            };
            io::Error::new(kind, text)
        }
        _ => io::Error::other(format!("{operation}: {}", source_chain(&e))),
    }
}

/// The error's sources joined with `: ` (the SDK's own `Display` says only "dispatch failure").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = e.source();
    while let Some(source) = next {
        let text = source.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = source.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{io_kind, ErrorKind};
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    fn answered(status: u16, code: &str) -> SdkError<GetObjectError, HttpResponse> {
        let status = status.try_into().expect("a status code");
        let meta = ErrorMetadata::builder()
            .code(code)
            .message("what the server said")
            .build();
        SdkError::service_error(
            GetObjectError::generic(meta),
            HttpResponse::new(status, SdkBody::empty()),
        )
    }

    fn kind(e: SdkError<GetObjectError, HttpResponse>) -> ErrorKind {
        io_kind(&io_error("GetObject", e))
    }

    #[test]
    fn what_may_pass_is_transient_and_the_rest_is_not() {
        for (status, code) in [
            (500, "InternalError"),
            (503, "SlowDown"),
            (502, "BadGateway"),
            (429, "TooManyRequests"),
            (400, "RequestTimeout"),
        ] {
            assert_eq!(
                kind(answered(status, code)),
                ErrorKind::Transient,
                "{status} {code}"
            );
        }
        assert_eq!(kind(answered(404, "NoSuchKey")), ErrorKind::NotFound);
        assert_eq!(kind(answered(403, "AccessDenied")), ErrorKind::Permanent);
        assert_eq!(kind(answered(400, "InvalidArgument")), ErrorKind::Permanent);
        assert_eq!(
            kind(SdkError::timeout_error("slow")),
            ErrorKind::Transient,
            "a timeout"
        );
        assert_eq!(
            kind(SdkError::dispatch_failure(ConnectorError::io(
                "refused".into()
            ))),
            ErrorKind::Transient,
            "a connection that failed"
        );
        assert_eq!(
            kind(SdkError::dispatch_failure(ConnectorError::timeout(
                "slow".into()
            ))),
            ErrorKind::Transient
        );
        assert_eq!(
            kind(SdkError::response_error(
                "truncated",
                HttpResponse::new(200.try_into().expect("200"), SdkBody::empty())
            )),
            ErrorKind::Transient,
            "an answer that could not be read"
        );
    }

    #[test]
    fn messages_name_the_operation_code_and_status() {
        let message = io_error("GetObject", answered(403, "AccessDenied")).to_string();
        assert_eq!(
            message,
            "GetObject: AccessDenied (403): what the server said"
        );
    }
}
