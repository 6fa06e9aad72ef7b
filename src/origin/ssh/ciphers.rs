//! Which symmetric cipher the built-in client asks for, and the user's `Ciphers` applied to
//! that choice as OpenSSH applies it to its own.
//!
//! Every byte of a pull is encrypted by the server and decrypted by the client, so the cipher
//! is a large part of both ends' CPU: with ChaCha20-Poly1305, russh's first choice (and
//! OpenSSH's), the cipher took 16.6 % of the client's samples in an initial pull. Where the
//! CPU has AES instructions and carry-less multiplication (x86-64 AES-NI and PCLMULQDQ,
//! AArch64's AES and PMULL), AES-GCM costs a fraction of that on both ends (russh runs it
//! through aws-lc, OpenSSH through libcrypto), so it comes first there for a session that
//! moves a library (a cold pull). Other sessions, and other CPUs, keep russh's list with
//! ChaCha20-Poly1305 first, whose packets are smaller (padded to 8 bytes, not 16): the no-change,
//! retag and cover syncs cross the same bytes as before. The client can only look at its own CPU: a server without
//! AES instructions (an old ARM NAS) is better served by `Ciphers
//! ^chacha20-poly1305@openssh.com` in `~/.ssh/config`, which is honoured.
//!
//! Never does: offer `none` or `clear` (an unencrypted session), whatever the configuration
//! says, or offer a cipher a `Ciphers` line removed or left out.

use russh::cipher::{self, Name};

use super::config::wildcard;

/// The ciphers the built-in client can use, by the names `Ciphers` gives them.
fn supported() -> impl Iterator<Item = Name> {
    cipher::ALL_CIPHERS
        .iter()
        .map(|name| **name)
        .filter(|name| *name != cipher::NONE && *name != cipher::CLEAR)
}

/// Whether AES-GCM runs on instructions of this CPU.
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The ciphers offered when the configuration says nothing. For a session whose bytes are
/// mostly bulk data (`bulk`: a cold pull) on a CPU with AES instructions: the AEAD ciphers
/// with AES-GCM first, then the CTR modes. Otherwise russh's own list, ChaCha20-Poly1305
/// first: its packets pad to 8 bytes where AES-GCM's pad to 16, and its list is the one every
/// earlier measurement of the small scenarios (no change, a retag, a cover) was made with,
/// to the byte.
pub(crate) fn default_order(bulk: bool) -> Vec<Name> {
    default_for(bulk && aes_in_hardware())
}

fn default_for(aes_first: bool) -> Vec<Name> {
    if !aes_first {
        return russh::Preferred::DEFAULT.cipher.to_vec();
    }
    vec![
        cipher::AES_128_GCM,
        cipher::AES_256_GCM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ]
}

/// The ciphers to offer: `ciphers` (a `Ciphers` value) applied to [`default_order`]`(bulk)`,
/// or that order as it is. A value [`check`] refused offers the default order.
pub(crate) fn preference(ciphers: Option<&str>, bulk: bool) -> Vec<Name> {
    let default = default_order(bulk);
    match ciphers {
        Some(value) => preference_over(value, &default).unwrap_or(default),
        None => default,
    }
}

/// Whether a `Ciphers` value is one the built-in client can honour, whichever default it is
/// applied to; the reason when it is not.
pub(crate) fn check(value: &str) -> Result<(), String> {
    for aes_first in [true, false] {
        preference_over(value, &default_for(aes_first))?;
    }
    Ok(())
}

/// What a `Ciphers` value asks for, as OpenSSH reads it (`ssh_config(5)`): a list replaces
/// the default set, `+list` appends to it, `-list` removes from it (patterns allowed
/// everywhere: `*`, `?`), `^list` puts the list at its head. Names the built-in client does
/// not have are skipped (an OpenSSH-only cipher in a shared configuration); a value that
/// leaves nothing to offer is an error, with the reason.
fn preference_over(value: &str, default: &[Name]) -> Result<Vec<Name>, String> {
    let (mode, list) = match value.as_bytes().first() {
        Some(b'+' | b'-' | b'^') => value.split_at(1),
        _ => ("", value),
    };
    let patterns: Vec<&str> = list.split(',').filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return Err("expected a comma-separated list of ciphers".into());
    }
    let matching = |name: &Name| patterns.iter().any(|p| wildcard(p, name.as_ref()));
    // In the list's order, each pattern's matches in the order the client prefers them.
    let listed = || {
        let mut names = Vec::new();
        for pattern in &patterns {
            for name in default.iter().copied().chain(supported()) {
                if wildcard(pattern, name.as_ref()) && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    };
    let chosen: Vec<Name> = match mode {
        "+" => {
            let mut names = default.to_vec();
            names.extend(listed().into_iter().filter(|n| !default.contains(n)));
            names
        }
        "-" => default.iter().copied().filter(|n| !matching(n)).collect(),
        "^" => {
            let first = listed();
            let rest = default.iter().copied().filter(|n| !first.contains(n));
            let names: Vec<Name> = first.iter().copied().chain(rest).collect();
            names
        }
        _ => listed(),
    };
    if chosen.is_empty() {
        let known: Vec<String> = supported().map(|n| n.as_ref().to_owned()).collect();
        return Err(format!(
            "it leaves no cipher the built-in SSH client has (it has {})",
            known.join(",")
        ));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(list: &[Name]) -> Vec<String> {
        list.iter().map(|n| n.as_ref().to_owned()).collect()
    }

    fn read(value: &str, aes: bool) -> Result<Vec<String>, String> {
        preference_over(value, &default_for(aes)).map(|l| texts(&l))
    }

    const GCM128: &str = "aes128-gcm@openssh.com";
    const GCM256: &str = "aes256-gcm@openssh.com";
    const CHACHA: &str = "chacha20-poly1305@openssh.com";

    #[test]
    fn aes_gcm_comes_first_only_for_bulk_where_the_cpu_runs_it() {
        assert_eq!(texts(&default_for(true))[..3], [GCM128, GCM256, CHACHA]);
        // Otherwise russh's list, byte for byte what was offered before.
        assert_eq!(
            default_for(false),
            russh::Preferred::DEFAULT.cipher.to_vec()
        );
        assert_eq!(texts(&default_for(false))[0], CHACHA);
        assert_eq!(default_order(false), default_for(false));
        // Every default is a cipher russh has, and none is unencrypted.
        for aes in [true, false] {
            for name in default_for(aes) {
                assert!(supported().any(|k| k == name), "{}", name.as_ref());
            }
        }
    }

    #[test]
    fn a_list_replaces_the_default_in_its_own_order() {
        assert_eq!(
            read("chacha20-poly1305@openssh.com", true).unwrap(),
            [CHACHA]
        );
        assert_eq!(
            read("aes256-gcm@openssh.com,chacha20-poly1305@openssh.com", true).unwrap(),
            [GCM256, CHACHA]
        );
        // Patterns expand to the matching ciphers, in the client's order.
        assert_eq!(
            read("aes*-gcm@openssh.com", true).unwrap(),
            [GCM128, GCM256]
        );
        // A cipher only OpenSSH has is skipped; a list of nothing else is refused, as is
        // an attempt to ask for no encryption.
        assert_eq!(
            read("3des-cbc-x,chacha20-poly1305@openssh.com", true).unwrap(),
            [CHACHA]
        );
        assert!(read("3des-cbc-x", true).unwrap_err().contains("no cipher"));
        assert!(read("none", true).is_err());
        assert!(read("clear", true).is_err());
        assert!(read("", true).is_err());
        assert!(read("+", true).is_err());
    }

    #[test]
    fn plus_appends_minus_removes_caret_puts_first() {
        let default = texts(&default_for(true));
        let appended = read("+aes128-cbc", true).unwrap();
        assert_eq!(appended[..default.len()], default[..]);
        assert_eq!(appended.last().map(String::as_str), Some("aes128-cbc"));
        // Appending what is there already changes nothing.
        assert_eq!(
            read("+chacha20-poly1305@openssh.com", true).unwrap(),
            default
        );

        let removed = read("-aes*-gcm@openssh.com", true).unwrap();
        assert_eq!(removed[0], CHACHA);
        assert!(!removed.iter().any(|n| n.contains("gcm")));
        assert!(read("-*", true).is_err());

        let first = read("^chacha20-poly1305@openssh.com", true).unwrap();
        assert_eq!(first[..3], [CHACHA, GCM128, GCM256]);
        assert_eq!(first.len(), default.len());
        let first = read("^aes128-gcm@openssh.com", false).unwrap();
        assert_eq!(first[..2], [GCM128, CHACHA]);

        // `check` refuses what leaves nothing, whichever the default; `preference` applies.
        assert!(check("-*").is_err());
        assert!(check("^aes128-gcm@openssh.com").is_ok());
        assert_eq!(
            texts(&preference(Some("chacha20-poly1305@openssh.com"), true)),
            [CHACHA]
        );
    }
}
