use super::reader::{host_matches, pattern_list_matches};
use super::*;

fn spec(user: Option<&str>, host: &str, port: Option<u16>) -> SshSpec {
    SshSpec {
        user: user.map(str::to_owned),
        host: host.to_owned(),
        port,
        path: Vec::new(),
    }
}

fn home_with_config(text: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(home.path().join(".ssh")).expect("mkdir");
    std::fs::write(home.path().join(".ssh/config"), text).expect("write");
    home
}

fn refusal(home: &tempfile::TempDir, host: &str) -> Refusal {
    plan(&spec(Some("u"), host, None), home.path())
        .expect("readable")
        .expect_err("refused")
}

#[test]
fn alias_gives_host_port_user_and_keys() {
    let home = home_with_config(
        "Host nas\n  HostName 192.0.2.7\n  Port 2222\n  User music\n  IdentityFile ~/.ssh/nas_key\n\
         Host *\n  User fallback\n  Port 22\n",
    );
    let target = resolve(&spec(None, "nas", None), home.path()).expect("resolve");
    assert_eq!(target.host, "192.0.2.7");
    assert_eq!(target.port, 2222);
    assert_eq!(target.user, "music");
    assert_eq!(
        target.identity_files,
        vec![home.path().join(".ssh/nas_key")]
    );
    assert_eq!(target.proxy, Proxy::Direct);
}

#[test]
fn explicit_user_and_port_win_and_first_match_wins() {
    let home = home_with_config(
        "Host *.lan\n  Port 2200\n  User first\nHost box.lan\n  Port 2300\n  User second\n",
    );
    let target = resolve(&spec(None, "box.lan", None), home.path()).expect("resolve");
    assert_eq!((target.port, target.user.as_str()), (2200, "first"));
    let target = resolve(&spec(Some("me"), "box.lan", Some(9)), home.path()).expect("resolve");
    assert_eq!((target.port, target.user.as_str()), (9, "me"));
    assert_eq!(target.host, "box.lan");
}

#[test]
fn no_config_means_defaults() {
    let home = tempfile::tempdir().expect("tempdir");
    let target = resolve(&spec(Some("u"), "h", None), home.path()).expect("resolve");
    assert_eq!(target.port, 22);
    assert_eq!(
        target.identity_files,
        vec![
            home.path().join(".ssh/id_ed25519"),
            home.path().join(".ssh/id_ecdsa"),
            home.path().join(".ssh/id_rsa")
        ]
    );
    assert_eq!(
        target.known_hosts,
        vec![home.path().join(".ssh/known_hosts")]
    );
}

#[test]
fn tokens() {
    assert_eq!(
        expand("%h.example.org", &[('h', "nas")]).unwrap(),
        "nas.example.org"
    );
    assert_eq!(expand("a%%b", &[('h', "x")]).unwrap(), "a%b");
    assert_eq!(expand("a%C", &[('h', "x")]), Err('C'));
}

#[test]
fn patterns_and_negation() {
    assert!(wildcard("*.lan", "nas.lan"));
    assert!(wildcard("n?s*", "nas"));
    assert!(!wildcard("*.lan", "nas.lan.org"));
    assert!(host_matches(&["*".into(), "!bad".into()], "good"));
    assert!(!host_matches(&["*".into(), "!bad".into()], "bad"));
    assert!(pattern_list_matches("a*,!ab", "ac", false));
    assert!(!pattern_list_matches("a*,!ab", "ab", false));
}

#[test]
fn keyword_equals_quotes_and_comments() {
    let home =
        home_with_config("host=nas # the box\n  HOSTNAME=\"10.0.0.1\"\n  port = 2022\n# Port 1\n");
    let target = resolve(&spec(Some("u"), "nas", None), home.path()).expect("resolve");
    assert_eq!((target.host.as_str(), target.port), ("10.0.0.1", 2022));
}

#[test]
fn proxy_jump_chains_and_none() {
    let home = home_with_config(
        "Host nas\n  ProxyJump me@bastion:2200,ssh://[::1]:22,inner\n\
         Host direct\n  ProxyJump none\nHost *\n  ProxyJump fallback\n",
    );
    let target = resolve(&spec(Some("u"), "nas", None), home.path()).expect("resolve");
    let Proxy::Jump(hops) = target.proxy else {
        panic!("no jump: {:?}", target.proxy)
    };
    assert_eq!(hops[0], spec(Some("me"), "bastion", Some(2200)));
    assert_eq!(hops[1], spec(None, "::1", Some(22)));
    assert_eq!(hops[2], spec(None, "inner", None));
    let direct = resolve(&spec(Some("u"), "direct", None), home.path()).expect("resolve");
    assert_eq!(direct.proxy, Proxy::Direct);
}

#[test]
fn proxy_command_tokens_and_first_wins() {
    let home = home_with_config(
        "Host nas\n  HostName 10.1.1.1\n  Port 2\n  ProxyCommand nc %h %p # %r %n %%\n  ProxyJump b\n\
         Host other\n  ProxyJump b\n  ProxyCommand nc %h %p\n",
    );
    let target = resolve(&spec(Some("me"), "nas", None), home.path()).expect("resolve");
    assert_eq!(
        target.proxy,
        Proxy::Command("nc 10.1.1.1 2 # me nas %".into())
    );
    let other = resolve(&spec(Some("me"), "other", None), home.path()).expect("resolve");
    assert!(matches!(other.proxy, Proxy::Jump(_)));
}

#[test]
fn include_globs_relative_nested_and_inside_host_blocks() {
    let home = home_with_config(
        "Include config.d/*.conf\nHost skipped\n  Include never.conf\nHost *\n  User last\n",
    );
    let dir = home.path().join(".ssh/config.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("a.conf"),
        "Host a\n  HostName 10.0.0.1\n  Include nested\n",
    )
    .unwrap();
    std::fs::write(dir.join("b.conf"), "Host b\n  HostName 10.0.0.2\n").unwrap();
    std::fs::write(dir.join("ignored.txt"), "Host a\n  HostName 10.9.9.9\n").unwrap();
    std::fs::write(home.path().join(".ssh/nested"), "Port 2200\n").unwrap();
    std::fs::write(home.path().join(".ssh/never.conf"), "Bogus yes\n").unwrap();
    let a = resolve(&spec(None, "a", None), home.path()).expect("a");
    assert_eq!(
        (a.host.as_str(), a.port, a.user.as_str()),
        ("10.0.0.1", 2200, "last")
    );
    let b = resolve(&spec(None, "b", None), home.path()).expect("b");
    assert_eq!((b.host.as_str(), b.port), ("10.0.0.2", 22));
}

#[test]
fn match_host_user_all_and_refused_criteria() {
    let home = home_with_config(
        "Host nas\n  HostName box.lan\nMatch host box.lan user music\n  Port 2201\n\
         Match originalhost nas !user music\n  Port 2202\nMatch all\n  IdentitiesOnly yes\n\
         Match host nothere exec \"false\"\n  Port 1\nMatch exec \"true\"\n  Port 3\n",
    );
    let refused = refusal(&home, "nas");
    assert_eq!(refused.keyword, "Match");
    // Line 9 is not refused: its host criterion fails first, so exec is never reached.
    assert_eq!(refused.line, 11);
    assert!(refused.reason.contains("exec"), "{refused}");
    assert!(refused.to_string().contains("--rsh ssh"), "{refused}");

    let home = home_with_config(
        "Host nas\n  HostName box.lan\nMatch host box.lan user music\n  Port 2201\n\
         Match originalhost nas !user music\n  Port 2202\nMatch all\n  IdentitiesOnly yes\n",
    );
    let music = resolve(&spec(Some("music"), "nas", None), home.path()).expect("music");
    assert_eq!(music.port, 2201);
    assert!(music.identities_only);
    let other = resolve(&spec(Some("x"), "nas", None), home.path()).expect("x");
    assert_eq!(other.port, 2202);
}

#[test]
fn refusals_name_keyword_file_and_line() {
    let home = home_with_config(
        "Host nas\n  Compression yes\n  ControlMaster auto\n  CertificateFile ~/.ssh/c.pub\n",
    );
    let refused = refusal(&home, "nas");
    assert_eq!(
        (refused.keyword.as_str(), refused.line),
        ("CertificateFile", 4)
    );
    assert_eq!(refused.file, home.path().join(".ssh/config"));
    assert_eq!(
        unsupported(&spec(None, "other", None), home.path()).unwrap(),
        None
    );

    let home = home_with_config("Host nas\n  FrobnicateHost yes\n");
    assert_eq!(refusal(&home, "nas").keyword, "FrobnicateHost");
    let home = home_with_config("IgnoreUnknown Frob*\nHost nas\n  FrobnicateHost yes\n");
    assert!(resolve(&spec(Some("u"), "nas", None), home.path()).is_ok());

    let home = home_with_config("Host nas\n  Ciphers aes256-gcm@openssh.com\n");
    let target = resolve(&spec(Some("u"), "nas", None), home.path()).unwrap();
    assert_eq!(target.ciphers.as_deref(), Some("aes256-gcm@openssh.com"));
    let home = home_with_config("Host nas\n  Ciphers -chacha20*\nHost *\n  Ciphers none\n");
    let target = resolve(&spec(Some("u"), "nas", None), home.path()).unwrap();
    assert_eq!(target.ciphers.as_deref(), Some("-chacha20*"));
    let home = home_with_config("Host nas\n  Ciphers none\n");
    assert_eq!(refusal(&home, "nas").keyword, "Ciphers");
    let home = home_with_config("Host nas\n  MACs hmac-sha2-256\n");
    assert_eq!(refusal(&home, "nas").keyword, "MACs");
    let home = home_with_config("Host nas\n  HostKeyAlgorithms +ssh-rsa\n");
    assert!(resolve(&spec(Some("u"), "nas", None), home.path()).is_ok());
    let home = home_with_config("Host nas\n  PreferredAuthentications password\n");
    assert_eq!(refusal(&home, "nas").keyword, "PreferredAuthentications");
}

#[test]
fn a_refused_jump_host_is_found_through_the_chain() {
    let home = home_with_config(
        "Host nas\n  ProxyJump hop1,hop2\nHost hop1\n  ProxyJump hop0\n\
         Host hop0\n  BindAddress 10.0.0.1\n",
    );
    let refused = unsupported(&spec(None, "nas", None), home.path())
        .unwrap()
        .expect("refused");
    assert_eq!((refused.keyword.as_str(), refused.line), ("BindAddress", 6));
    let home = home_with_config("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n");
    let looped = unsupported(&spec(None, "a", None), home.path()).expect_err("loop");
    assert!(looped.to_string().contains("loop"), "{looped}");
}

#[test]
fn host_key_settings() {
    let home = home_with_config(
        "Host nas\n  UserKnownHostsFile ~/kh1 %d/kh2\n  GlobalKnownHostsFile /etc/kh\n\
         StrictHostKeyChecking accept-new\n  HostKeyAlias nasbox\n  IdentityAgent none\n\
         ConnectTimeout 3\n  ServerAliveInterval 5\n  ServerAliveCountMax 2\n",
    );
    let t = resolve(&spec(Some("u"), "nas", None), home.path()).expect("resolve");
    assert_eq!(
        t.known_hosts,
        vec![home.path().join("kh1"), home.path().join("kh2")]
    );
    assert_eq!(t.global_known_hosts, vec![PathBuf::from("/etc/kh")]);
    assert_eq!(t.accept_new, Some(true));
    assert_eq!(t.host_key_alias.as_deref(), Some("nasbox"));
    assert_eq!(t.agent, AgentChoice::Disabled);
    assert_eq!(t.connect_timeout, Some(Duration::from_secs(3)));
    assert_eq!(t.server_alive_interval, Some(Duration::from_secs(5)));
    assert_eq!(t.server_alive_count_max, Some(2));
}

#[test]
fn identity_file_none_means_no_key_files() {
    let home = home_with_config("Host nas\n  IdentityFile none\n");
    let t = resolve(&spec(Some("u"), "nas", None), home.path()).expect("resolve");
    assert!(t.identity_files.is_empty());
}
