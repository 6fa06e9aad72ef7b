//! Public key authentication: keys held by ssh-agent first, then key files. With
//! `IdentitiesOnly`, only the agent keys whose public half belongs to one of the key files.
//!
//! Key files are read without a passphrase; an encrypted one is skipped, and the error says to
//! load it into ssh-agent. Nothing here logs or reports key material: only file paths, key
//! types and fingerprints.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};

/// Authenticates `user` on `handle`. On failure, returns a message saying what was tried.
/// `identities_only`: offer only the agent keys that are one of `identity_files` (found from
/// `FILE.pub`, or from the unencrypted private key).
pub(crate) async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    agent_socket: Option<&Path>,
    identity_files: &[PathBuf],
    identities_only: bool,
) -> Result<(), String> {
    let mut tried = Vec::new();
    let mut notes = Vec::new();
    let rsa_hash = match handle.best_supported_rsa_hash().await {
        Ok(hash) => hash.flatten(),
        Err(_) => Some(HashAlg::Sha256),
    };

    if let Some(socket) = agent_socket {
        let allowed = identities_only.then(|| public_keys(identity_files));
        match try_agent(handle, user, socket, rsa_hash, allowed.as_deref()).await {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push(format!("the keys in ssh-agent ({})", socket.display())),
            Err(note) => notes.push(note),
        }
    }

    for path in identity_files {
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(key) => key,
            Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                notes.push(format!(
                    "{} is encrypted; load it into ssh-agent (ssh-add) first, musicfs does not \
                     ask for passphrases",
                    path.display()
                ));
                continue;
            }
            Err(e) => {
                notes.push(format!("{}: cannot use this key: {e}", path.display()));
                continue;
            }
        };
        tracing::debug!(path = %path.display(), algorithm = %key.algorithm(), "trying key file");
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        match handle.authenticate_publickey(user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => tried.push(path.display().to_string()),
            Err(e) => return Err(format!("authentication failed: {e}")),
        }
    }

    let mut message = format!("authentication as {user} failed");
    if tried.is_empty() {
        message.push_str("; no key was available (no agent keys, no key files)");
    } else {
        message.push_str(&format!("; the server refused {}", tried.join(", ")));
    }
    for note in notes {
        message.push_str("; ");
        message.push_str(&note);
    }
    Err(message)
}

/// The public keys of `files`: `FILE.pub`, or the public half of an unencrypted `FILE`.
fn public_keys(files: &[PathBuf]) -> Vec<PublicKey> {
    files
        .iter()
        .filter_map(|path| {
            let mut public = path.clone().into_os_string();
            public.push(".pub");
            russh::keys::load_public_key(PathBuf::from(public))
                .ok()
                .or_else(|| {
                    russh::keys::load_secret_key(path, None)
                        .ok()
                        .map(|key| key.public_key().clone())
                })
        })
        .collect()
}

/// Offers each key the agent holds (only those in `allowed`, when given). `Ok(false)`: none
/// was accepted; `Err`: the agent could not be used (a note for the final message).
async fn try_agent<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    socket: &Path,
    rsa_hash: Option<HashAlg>,
    allowed: Option<&[PublicKey]>,
) -> Result<bool, String> {
    let unusable = |e: &dyn std::fmt::Display| {
        format!("ssh-agent at {} cannot be used: {e}", socket.display())
    };
    let mut agent = AgentClient::connect_uds(socket)
        .await
        .map_err(|e| unusable(&e))?;
    let identities = agent.request_identities().await.map_err(|e| unusable(&e))?;
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        if allowed.is_some_and(|allowed| !allowed.contains(&key)) {
            continue;
        }
        tracing::debug!(
            fingerprint = %key.fingerprint(HashAlg::Sha256),
            "trying ssh-agent key"
        );
        let hash = if key.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut agent)
            .await
        {
            Ok(AuthResult::Success) => return Ok(true),
            Ok(AuthResult::Failure { .. }) => {}
            Err(e) => tracing::debug!("ssh-agent could not sign: {e}"),
        }
    }
    Ok(false)
}
