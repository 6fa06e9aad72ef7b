//! What the built-in SSH client does with each `ssh_config(5)` keyword: the one table that
//! `config.rs` consults, and that `docs/ssh-config.md` describes.
//!
//! Never does: let a keyword that changes where, as whom, or with how much trust we connect
//! pass without being honoured or refused. A keyword missing from the table is unknown, and
//! unknown keywords are refused (as OpenSSH refuses them) unless `IgnoreUnknown` names them.

/// What the built-in client does with a keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Treatment {
    /// Read and acted upon (some values may still be refused; `config.rs` says which).
    Honoured,
    /// Read and ignored: it changes nothing about where, as whom, or how trusted the
    /// connection is (logging, terminal features, forwardings musicfs never needs).
    Harmless,
    /// Not supported: a host whose settings use it is refused, naming the keyword, with the
    /// reason given here.
    Refused(&'static str),
}

use Treatment::{Harmless, Honoured, Refused};

/// Every keyword of `ssh_config(5)` (OpenSSH 10), lower case, with its treatment.
pub(crate) const KEYWORDS: &[(&str, Treatment)] = &[
    // Selection and structure.
    ("host", Honoured),
    ("match", Honoured),
    ("include", Honoured),
    ("ignoreunknown", Honoured),
    // Where and as whom.
    ("hostname", Honoured),
    ("port", Honoured),
    ("user", Honoured),
    ("proxyjump", Honoured),
    ("proxycommand", Honoured),
    ("addressfamily", Honoured),
    ("connecttimeout", Honoured),
    ("serveraliveinterval", Honoured),
    ("serveralivecountmax", Honoured),
    ("canonicalizehostname", Honoured),
    ("refuseconnection", Honoured),
    // Authentication.
    ("identityfile", Honoured),
    ("identitiesonly", Honoured),
    ("identityagent", Honoured),
    ("pubkeyauthentication", Honoured),
    ("preferredauthentications", Honoured),
    // Host keys.
    ("userknownhostsfile", Honoured),
    ("globalknownhostsfile", Honoured),
    ("stricthostkeychecking", Honoured),
    ("hostkeyalias", Honoured),
    // Algorithm lists: `+list` (append) is harmless, since an algorithm the built-in client
    // lacks fails the handshake loudly; a list that removes or reorders is refused, except
    // `Ciphers`, which is applied in full (`ciphers.rs`).
    ("kexalgorithms", Honoured),
    ("ciphers", Honoured),
    ("macs", Honoured),
    ("hostkeyalgorithms", Honoured),
    ("pubkeyacceptedalgorithms", Honoured),
    ("pubkeyacceptedkeytypes", Honoured),
    ("casignaturealgorithms", Honoured),
    // Refused: they change how we connect or what we trust, and are not implemented.
    (
        "bindaddress",
        Refused("the built-in client cannot choose the local source address"),
    ),
    (
        "bindinterface",
        Refused("the built-in client cannot choose the local interface"),
    ),
    (
        "certificatefile",
        Refused("the built-in client does not authenticate with certificates"),
    ),
    (
        "pkcs11provider",
        Refused("the built-in client does not use PKCS#11 tokens"),
    ),
    (
        "securitykeyprovider",
        Refused("the built-in client does not use FIDO security keys"),
    ),
    (
        "knownhostscommand",
        Refused("the built-in client does not run a command to find host keys"),
    ),
    (
        "revokedhostkeys",
        Refused("the built-in client does not check revoked host keys"),
    ),
    (
        "requiredrsasize",
        Refused("the built-in client does not enforce a minimum RSA key size"),
    ),
    (
        "proxyusefdpass",
        Refused("the built-in client does not receive a socket from its ProxyCommand"),
    ),
    (
        "setenv",
        Refused("the built-in client does not send environment variables"),
    ),
    // Harmless: nothing about where, as whom, or how trusted the connection is.
    ("addkeystoagent", Harmless),
    ("batchmode", Harmless),
    ("canonicaldomains", Harmless),
    ("canonicalizefallbacklocal", Harmless),
    ("canonicalizemaxdots", Harmless),
    ("canonicalizepermittedcnames", Harmless),
    ("challengeresponseauthentication", Harmless),
    ("channeltimeout", Harmless),
    ("checkhostip", Harmless),
    ("clearallforwardings", Harmless),
    ("compression", Harmless),
    ("connectionattempts", Harmless),
    ("controlmaster", Harmless),
    ("controlpath", Harmless),
    ("controlpersist", Harmless),
    ("dynamicforward", Harmless),
    ("enableescapecommandline", Harmless),
    ("enablesshkeysign", Harmless),
    ("escapechar", Harmless),
    ("exitonforwardfailure", Harmless),
    ("fingerprinthash", Harmless),
    ("forkafterauthentication", Harmless),
    ("forwardagent", Harmless),
    ("forwardx11", Harmless),
    ("forwardx11timeout", Harmless),
    ("forwardx11trusted", Harmless),
    ("gatewayports", Harmless),
    ("gssapiauthentication", Harmless),
    ("gssapidelegatecredentials", Harmless),
    ("hashknownhosts", Harmless),
    ("hostbasedacceptedalgorithms", Harmless),
    ("hostbasedauthentication", Harmless),
    ("hostbasedkeytypes", Harmless),
    ("ipqos", Harmless),
    ("kbdinteractiveauthentication", Harmless),
    ("kbdinteractivedevices", Harmless),
    ("localcommand", Harmless),
    ("localforward", Harmless),
    ("loglevel", Harmless),
    ("logverbose", Harmless),
    ("nohostauthenticationforlocalhost", Harmless),
    ("numberofpasswordprompts", Harmless),
    ("obscurekeystroketiming", Harmless),
    ("passwordauthentication", Harmless),
    ("permitlocalcommand", Harmless),
    ("permitremoteopen", Harmless),
    ("rekeylimit", Harmless),
    ("remotecommand", Harmless),
    ("remoteforward", Harmless),
    ("requesttty", Harmless),
    ("sendenv", Harmless),
    ("sessiontype", Harmless),
    ("stdinnull", Harmless),
    ("streamlocalbindmask", Harmless),
    ("streamlocalbindunlink", Harmless),
    ("syslogfacility", Harmless),
    ("tag", Harmless),
    ("tcpkeepalive", Harmless),
    ("tunnel", Harmless),
    ("tunneldevice", Harmless),
    ("updatehostkeys", Harmless),
    ("usekeychain", Harmless),
    ("verifyhostkeydns", Harmless),
    ("visualhostkey", Harmless),
    ("warnweakcrypto", Harmless),
    ("xauthlocation", Harmless),
    // Deprecated or removed from OpenSSH, which ignores them too.
    ("cipher", Harmless),
    ("compressionlevel", Harmless),
    ("protocol", Harmless),
    ("rhostsrsaauthentication", Harmless),
    ("rsaauthentication", Harmless),
    ("useprivilegedport", Harmless),
    ("useroaming", Harmless),
    ("gssapikeyexchange", Harmless),
    ("gssapiclientidentity", Harmless),
    ("gssapiserveridentity", Harmless),
    ("gssapirenewalforcesrekey", Harmless),
    ("gssapitrustdns", Harmless),
];

/// The treatment of `keyword` (any case), or `None` for a keyword OpenSSH does not know.
pub(crate) fn treatment(keyword: &str) -> Option<Treatment> {
    let lower = keyword.to_ascii_lowercase();
    KEYWORDS
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, treatment)| *treatment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_each_keyword_once_in_lower_case() {
        let mut names: Vec<&str> = KEYWORDS.iter().map(|(name, _)| *name).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())));
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
        assert_eq!(treatment("ProxyJump"), Some(Honoured));
        assert_eq!(treatment("ControlMaster"), Some(Harmless));
        assert!(matches!(treatment("CertificateFile"), Some(Refused(_))));
        assert_eq!(treatment("NoSuchKeyword"), None);
    }
}
