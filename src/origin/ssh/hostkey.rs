//! Host key checking against `known_hosts` files (`<home>/.ssh/known_hosts`, or the
//! configuration's `UserKnownHostsFile` and `GlobalKnownHostsFile`), as OpenSSH's
//! `StrictHostKeyChecking=yes` (or `accept-new`) does it.
//!
//! A host is looked up as `host` on port 22 and as `[host]:port` otherwise (under its
//! `HostKeyAlias` alone when it has one), in plain and hashed (`|1|…`) entries of every file;
//! a new key is learnt into the first user file. A key that matches no entry while the host has entries is a changed key,
//! whatever its algorithm: accepting it would let an attacker downgrade to a key type we have
//! never seen. A changed key is refused even when new keys are accepted.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{Algorithm, HashAlg, PublicKey};

use crate::error::Error;

/// What to do with the key a host presents.
#[derive(Debug)]
pub(crate) struct HostKeyPolicy {
    /// The `known_hosts` files to check, in order.
    pub known_hosts: Vec<PathBuf>,
    /// The file new keys are learnt into (`None`: they are accepted without being recorded).
    pub learn_into: Option<PathBuf>,
    /// The host name or address connected to (after `~/.ssh/config`), or its
    /// `HostKeyAlias`.
    pub host: String,
    /// The port connected to (22 for an alias, which is looked up without a port).
    pub port: u16,
    /// Learn keys of unknown hosts instead of refusing them.
    pub accept_new: bool,
}

impl HostKeyPolicy {
    /// The host as `known_hosts` and [`Error::HostKey`] name it.
    pub fn host_label(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }

    fn error(&self, message: String) -> Error {
        Error::HostKey {
            host: self.host_label(),
            message,
        }
    }

    /// The keys recorded for this host, with their files and line numbers.
    fn recorded(&self) -> Result<Vec<(&Path, usize, PublicKey)>, Error> {
        let mut all = Vec::new();
        for file in &self.known_hosts {
            let keys = known_host_keys_path(&self.host, self.port, file)
                .map_err(|e| self.error(format!("cannot read {}: {e}", file.display())))?;
            if keys.is_empty() {
                continue;
            }
            // russh numbers the lines that are not comments; translate to file line numbers.
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let numbers: Vec<usize> = text
                .lines()
                .enumerate()
                .filter(|(_, line)| !line.starts_with('#'))
                .map(|(index, _)| index + 1)
                .collect();
            all.extend(keys.into_iter().map(|(n, key)| {
                let line = n.checked_sub(1).and_then(|i| numbers.get(i)).copied();
                (file.as_path(), line.unwrap_or(n), key)
            }));
        }
        Ok(all)
    }

    /// Host key algorithms in the order to offer them: those recorded for this host first, so
    /// the server proves the key we know rather than another one it also holds.
    pub fn preferred_algorithms(&self, defaults: &[Algorithm]) -> Cow<'static, [Algorithm]> {
        let known: Vec<Algorithm> = self
            .recorded()
            .unwrap_or_default()
            .iter()
            .map(|(_, _, key)| key.algorithm())
            .collect();
        let same =
            |a: &Algorithm, b: &Algorithm| a == b || (a.clone().is_rsa() && b.clone().is_rsa());
        let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = defaults
            .iter()
            .cloned()
            .partition(|a| known.iter().any(|k| same(a, k)));
        first.extend(rest);
        Cow::Owned(first)
    }

    /// Accepts `key` if `known_hosts` records it, learns it if the host is unknown and new keys
    /// are accepted, and refuses it otherwise.
    pub fn check(&self, key: &PublicKey) -> Result<(), Error> {
        let recorded = self.recorded()?;
        let fingerprint = key.fingerprint(HashAlg::Sha256);
        if recorded.iter().any(|(_, _, known)| known == key) {
            tracing::debug!(host = %self.host_label(), %fingerprint, "host key known");
            return Ok(());
        }
        if let Some((file, line, known)) = recorded.first() {
            return Err(self.error(format!(
                "THE HOST KEY HAS CHANGED: the server offers {} key {fingerprint}, but {}:{line} \
                 records {} key {}. Someone may be intercepting the connection. If the host was \
                 reinstalled, remove that line and connect again.",
                key.algorithm(),
                file.display(),
                known.algorithm(),
                known.fingerprint(HashAlg::Sha256),
            )));
        }
        let where_to = self
            .learn_into
            .as_ref()
            .map(|file| file.display().to_string())
            .unwrap_or_else(|| "a known_hosts file".into());
        if !self.accept_new {
            return Err(self.error(format!(
                "unknown host key ({} {fingerprint}). Check it, then pass \
                 --accept-new-host-key to record it, or add it to {where_to}",
                key.algorithm(),
            )));
        }
        let Some(file) = &self.learn_into else {
            tracing::debug!(host = %self.host_label(), %fingerprint, "new host key accepted, not recorded (UserKnownHostsFile none)");
            return Ok(());
        };
        learn_known_hosts_path(&self.host, self.port, key, file).map_err(|e| {
            self.error(format!(
                "cannot record the new host key in {}: {e}",
                file.display()
            ))
        })?;
        tracing::debug!(host = %self.host_label(), %fingerprint, "new host key recorded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(base64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(base64).expect("key")
    }

    fn policy(dir: &tempfile::TempDir, port: u16, accept_new: bool) -> HostKeyPolicy {
        HostKeyPolicy {
            known_hosts: vec![dir.path().join("nothing"), dir.path().join("known_hosts")],
            learn_into: Some(dir.path().join("known_hosts")),
            host: "nas.lan".into(),
            port,
            accept_new,
        }
    }

    #[test]
    fn known_unknown_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("known_hosts"),
            format!("# comment\n[nas.lan]:2222 ssh-ed25519 {KEY_A}\nnas.lan ssh-ed25519 {KEY_B}\n"),
        )
        .expect("write");
        assert!(policy(&dir, 2222, false).check(&key(KEY_A)).is_ok());
        assert!(policy(&dir, 22, false).check(&key(KEY_B)).is_ok());
        let changed = policy(&dir, 2222, true)
            .check(&key(KEY_B))
            .expect_err("changed");
        assert!(changed.to_string().contains("known_hosts:2 "), "{changed}");
        let unknown = policy(&dir, 2223, false)
            .check(&key(KEY_A))
            .expect_err("unknown");
        assert!(
            unknown.to_string().contains("--accept-new-host-key"),
            "{unknown}"
        );
        policy(&dir, 2223, true)
            .check(&key(KEY_A))
            .expect("learned");
        assert!(policy(&dir, 2223, false).check(&key(KEY_A)).is_ok());
    }
}
