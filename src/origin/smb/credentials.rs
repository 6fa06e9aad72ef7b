//! SMB credentials: an account name, its password and its domain, kept out of sight (the
//! password is a [`Secret`], whose `Debug` and `Display` print `***`), and the reading of
//! smbclient's `--authentication-file` format.
//!
//! Never does: print, log or put into an error the password, or quote a credentials file's
//! content in a message.

use crate::origin::s3::Secret;

/// The environment variable that holds the password of the account an `smb://` URL names.
pub const PASSWORD_VARIABLE: &str = "MUSICFS_SMB_PASSWORD";
/// The environment variable that names a credentials file in smbclient's format.
pub const CREDENTIALS_VARIABLE: &str = "MUSICFS_SMB_CREDENTIALS";

/// What an SMB session is opened with, beside the URL: a password, and optionally the account
/// and domain a credentials file names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmbCredentials {
    /// The account, when a credentials file names one (a user in the URL wins).
    pub username: Option<String>,
    /// The password.
    pub password: Secret,
    /// The domain (workgroup), when one is given.
    pub domain: Option<String>,
}

impl SmbCredentials {
    /// A password alone (from [`PASSWORD_VARIABLE`]).
    pub fn password(password: String) -> SmbCredentials {
        SmbCredentials {
            username: None,
            password: Secret::new(password),
            domain: None,
        }
    }

    /// Reads the text of a credentials file in smbclient's `--authentication-file` format:
    /// lines `username = NAME`, `password = SECRET` and `domain = NAME` (blank lines and lines
    /// starting with `#` or `;` ignored). The error names the line and what is wrong, never
    /// what the line holds.
    pub fn parse_file(text: &str) -> Result<SmbCredentials, String> {
        let (mut username, mut password, mut domain) = (None, None, None);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.trim().is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "line {}: not `key = value` (username, password or domain)",
                    i + 1
                ));
            };
            // smbclient keeps the value from the first non-blank character after `=` to the
            // end of the line; a password may end in spaces, so only the line end is cut.
            let value = value.trim_start().trim_end_matches(['\r', '\n']);
            let slot = match key.trim().to_ascii_lowercase().as_str() {
                "username" => &mut username,
                "password" => &mut password,
                "domain" => &mut domain,
                _ => {
                    return Err(format!(
                        "line {}: unknown key (the file holds username, password and domain)",
                        i + 1
                    ))
                }
            };
            *slot = Some(value.to_string());
        }
        let Some(password) = password else {
            return Err("no `password = …` line".into());
        };
        let username = username
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty());
        let domain = domain
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        Ok(SmbCredentials {
            username,
            password: Secret::new(password),
            domain,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authentication_file_format_is_read() {
        let file = "# for the NAS\nusername = alice\npassword = s3cret with spaces \n\ndomain = WORKGROUP\n";
        let credentials = SmbCredentials::parse_file(file).unwrap();
        assert_eq!(credentials.username.as_deref(), Some("alice"));
        assert_eq!(credentials.password.expose(), "s3cret with spaces ");
        assert_eq!(credentials.domain.as_deref(), Some("WORKGROUP"));
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn bad_files_are_refused_without_quoting_them() {
        for (text, why) in [
            ("username = bob\n", "no `password"),
            ("password: hunter2\n", "line 1"),
            ("username = bob\nsecret = hunter2\n", "line 2: unknown key"),
        ] {
            let message = SmbCredentials::parse_file(text).unwrap_err();
            assert!(message.contains(why), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
