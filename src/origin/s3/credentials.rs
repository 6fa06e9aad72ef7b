//! Static S3 credentials (from a credentials file named in the config), kept out of sight:
//! the secret parts are [`Secret`]s, whose `Debug` and `Display` print `***`.
//!
//! Never does: print, log or put into an error a secret's value.

use std::fmt;

/// A value that must never be shown: `Debug` and `Display` print `***`. The only way to
/// its text is [`Secret::expose`], called where the value is handed to the SDK.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// An access key, in place of the AWS environment's credential chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id (not a secret: it names the key, as in AWS's own logs).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// A session token, for temporary credentials.
    pub session_token: Option<Secret>,
}

impl S3Credentials {
    /// The SDK's form.
    #[cfg(feature = "s3")]
    pub(crate) fn to_sdk(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            self.access_key_id.clone(),
            self.secret_access_key.expose().to_string(),
            self.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "musicfs-credentials-file",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let credentials = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI-very-secret".into()),
            session_token: Some(Secret::new("token-very-secret".into())),
        };
        let shown = format!("{credentials:?} {}", credentials.secret_access_key);
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(
            shown.contains("***") && shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
        let sdk = format!("{:?}", credentials.to_sdk());
        assert!(!sdk.contains("very-secret"), "{sdk}");
    }
}
