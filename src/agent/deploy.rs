//! `--deploy-agent`: when the remote host has no musicfs, copy this very binary there and run
//! it as the agent, as Mutagen and VS Code's remote servers deploy theirs.
//!
//! The flow, over one [`AgentConnection`]:
//! 1. A short POSIX `sh` script (run through the user's remote shell as `sh -c '…'`) checks
//!    that `uname -sm` names this build's OS and architecture, finds the per-user cache
//!    directory `${XDG_CACHE_HOME:-$HOME/.cache}/musicfs/agent` (created with umask 077), and
//!    refuses it when it, or its parent `musicfs`, is a symbolic link, is not owned by the
//!    user, or is writable by the group or others. Each version lives in
//!    `agent/<first 16 hex digits of the binary's BLAKE3>/musicfs`, mode 0700 in a 0700
//!    directory. When that file is already there, its SHA-256 (computed on the host by
//!    `sha256sum`, `shasum -a 256` or `sha256`) is compared with this binary's before it
//!    runs; a file that differs is removed and uploaded again.
//! 2. When absent, the binary is uploaded over the link's file transfer (SFTP) to a temporary
//!    name in that directory ([`AgentConnection::create_file`]), and a second run of the
//!    script checks its SHA-256 on the host — the upload is never trusted blindly — then
//!    makes it 0700 and renames it into place.
//! 3. The script runs `<path> --version` as a proof that the host can execute it (a `noexec`
//!    mount, an older C library); then it removes the sibling version directories — only
//!    entries of the cache directory whose names are 16 lowercase hex digits, never anything
//!    outside it — and the caller starts `<path> serve --stdio`.
//!
//! Whatever stops a deployment that is not the link's failure (another OS, no hash tool, a
//! refused cache directory, a binary that cannot run) is a [`Deployed::Unavailable`] with one
//! line of reason, and the caller falls back to the link's fallback origin. The deployed agent
//! is this binary, so its protocol version matches by construction.
//!
//! Never does: write outside the cache directory, run a file whose hash was not checked on
//! the host first, or retry (the caller retries a whole sync).

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;

use crate::error::{io_kind, Error, ErrorKind, Result};
use crate::origin::{AgentConnection, AgentProcess, Meter, MeteredStream};

/// Most of a script's output that is kept.
const OUTPUT_LIMIT: u64 = 64 * 1024;
/// How long a finished script may take to report its exit status.
const STATUS_WAIT: Duration = Duration::from_secs(5);

/// What a deployment came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deployed {
    /// The agent is in place and runs there: the command that starts it (`'…/musicfs'
    /// serve --stdio`), and whether this run uploaded it.
    Agent {
        /// The command for the remote shell.
        command: String,
        /// The absolute path of the deployed binary on the host.
        path: String,
        /// Whether the binary was uploaded by this run (false: an earlier one left it).
        uploaded: bool,
    },
    /// The agent cannot be deployed or cannot run there: why, in one line.
    Unavailable(String),
}

/// This binary, as a deployment names and checks it.
struct Binary {
    path: PathBuf,
    /// First 16 hex digits of its BLAKE3: the name of its version directory.
    name: String,
    /// Its SHA-256 in hex, as the host's tools print it.
    sha256: String,
}

/// This binary, hashed once per process. On Linux the running image itself
/// (`/proc/self/exe`), so that a binary replaced on disk since it started is not deployed in
/// its place.
fn this_binary() -> std::result::Result<&'static Binary, String> {
    static BINARY: OnceLock<std::result::Result<Binary, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let path = match PathBuf::from("/proc/self/exe") {
                p if p.exists() => p,
                _ => {
                    std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?
                }
            };
            let mut file = std::fs::File::open(&path)
                .map_err(|e| format!("cannot read this binary ({}): {e}", path.display()))?;
            let mut blake = blake3::Hasher::new();
            let mut sha = sha2::Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("cannot read this binary: {e}")),
                };
                blake.update(&buf[..n]);
                sha.update(&buf[..n]);
            }
            let blake = blake.finalize();
            Ok(Binary {
                path,
                name: hex(&blake.as_bytes()[..8]),
                sha256: hex(&sha.finalize()),
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// What `uname -sm` prints on a host that can run this build, as `case` patterns; `None` for
/// a build this module does not know how to match.
fn platform_patterns() -> Option<String> {
    platform_names(std::env::consts::OS, std::env::consts::ARCH)
}

fn platform_names(os: &str, arch: &str) -> Option<String> {
    let os = match os {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        "netbsd" => "NetBSD",
        "openbsd" => "OpenBSD",
        _ => return None,
    };
    let machines: &[&str] = match arch {
        "x86_64" => &["x86_64", "amd64"],
        "aarch64" => &["aarch64", "arm64"],
        "x86" => &["i386", "i486", "i586", "i686"],
        "riscv64" => &["riscv64"],
        "s390x" => &["s390x"],
        "loongarch64" => &["loongarch64"],
        _ => return None,
    };
    Some(
        machines
            .iter()
            .map(|m| format!("'{os} {m}'"))
            .collect::<Vec<_>>()
            .join("|"),
    )
}

/// Quotes `word` for a POSIX shell.
pub(crate) fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The deployment script: `sh -c SCRIPT sh MODE [TEMP]`, MODE `probe` or `install`. It
/// prints one line a caller reads: `platform P` (another OS or architecture), `refuse WHY`,
/// `absent` (upload needed), `mismatch` (the upload's hash differs), `cannot-run STATUS
/// LAST-LINE`, or `ready VERSION`; and `dir DIR` before any of the last four.
fn script(patterns: &str, name: &str, sha256: &str) -> String {
    // Single quotes never appear in it: it is passed in single quotes.
    format!(
        r#"umask 077
p=$(uname -sm 2>/dev/null) || p=unknown
case $p in
  {patterns}) ;;
  *) echo "platform $p"; exit 0 ;;
esac
base=${{XDG_CACHE_HOME:-${{HOME:-}}/.cache}}
case $base in
  /*) ;;
  *) echo "refuse neither XDG_CACHE_HOME nor HOME names an absolute directory"; exit 0 ;;
esac
for d in "$base/musicfs" "$base/musicfs/agent"; do
  if [ ! -e "$d" ] && [ ! -L "$d" ]; then
    mkdir -p "$d" 2>/dev/null || {{ echo "refuse cannot create $d"; exit 0; }}
  fi
  if [ -L "$d" ] || [ ! -d "$d" ]; then echo "refuse $d is not a directory of its own (a symbolic link?)"; exit 0; fi
  [ -O "$d" ] || {{ echo "refuse $d is not owned by this user"; exit 0; }}
  case $(ls -ld "$d") in
    ?????w*|????????w*) echo "refuse $d is writable by other users"; exit 0 ;;
  esac
done
dir=$base/musicfs/agent
echo "dir $dir"
a=$dir/{name}
f=$a/musicfs
sum() {{
  if command -v sha256sum >/dev/null 2>&1; then r=$(sha256sum < "$1") || return 1
  elif command -v shasum >/dev/null 2>&1; then r=$(shasum -a 256 < "$1") || return 1
  elif command -v sha256 >/dev/null 2>&1; then r=$(sha256 -q < "$1") || return 1
  else return 2; fi
  echo "${{r%% *}}"
}}
hashed() {{
  s=$(sum "$1"); st=$?
  if [ $st -eq 2 ]; then echo "refuse the host has no sha256sum, shasum or sha256 to check the agent with"; exit 0; fi
  [ $st -eq 0 ] && [ "$s" = {sha256} ]
}}
command -v sha256sum >/dev/null 2>&1 || command -v shasum >/dev/null 2>&1 || command -v sha256 >/dev/null 2>&1 || {{
  echo "refuse the host has no sha256sum, shasum or sha256 to check the agent with"; exit 0; }}
if [ "$1" = install ]; then
  t=$a/$2
  if [ -L "$t" ] || [ ! -f "$t" ]; then echo "mismatch"; exit 0; fi
  if ! hashed "$t"; then rm -f "$t"; echo "mismatch"; exit 0; fi
  chmod 700 "$t" && mv -f "$t" "$f" || {{ echo "refuse cannot move the agent into $a"; exit 0; }}
else
  if [ -L "$a" ] || {{ [ -e "$a" ] && [ ! -d "$a" ]; }}; then rm -f "$a"; fi
  if [ ! -d "$a" ]; then mkdir "$a" 2>/dev/null || [ -d "$a" ] || {{ echo "refuse cannot create $a"; exit 0; }}; fi
  [ -O "$a" ] || {{ echo "refuse $a is not owned by this user"; exit 0; }}
  chmod 700 "$a"
  find "$a" -name ".upload-*" -mmin +60 -exec rm -f {{}} + 2>/dev/null
  if [ -L "$f" ] || {{ [ -e "$f" ] && [ ! -f "$f" ]; }}; then echo "refuse $f is not a file"; exit 0; fi
  if [ ! -f "$f" ]; then echo "absent"; exit 0; fi
  if ! hashed "$f"; then rm -f "$f"; echo "absent"; exit 0; fi
fi
v=$("$f" --version 2>&1 </dev/null); st=$?
if [ $st -ne 0 ]; then
  echo "cannot-run $st $(printf "%s\n" "$v" | tail -n 1)"
  exit 0
fi
for e in "$dir"/*; do
  n=${{e##*/}}
  [ "$n" = {name} ] && continue
  case $n in
    {hex16}) rm -rf "$e" ;;
  esac
done
echo "ready $v"
"#,
        hex16 = "[0-9a-f]".repeat(16),
    )
}

/// Runs `command` through the remote shell with its stdin closed, and returns its stdout
/// (at most [`OUTPUT_LIMIT`]) and exit status.
fn run_script(link: &dyn AgentConnection, command: &str) -> Result<(String, Option<u32>, String)> {
    let AgentProcess {
        mut input,
        output,
        status,
    } = link.start_agent(command)?;
    drop(output);
    let mut out = Vec::new();
    let read = (&mut input).take(OUTPUT_LIMIT).read_to_end(&mut out);
    if let Some(failure) = status.link_failure(Duration::from_secs(2)) {
        return Err(failure);
    }
    read.map_err(|e| Error::Unreachable {
        origin: link.origin().to_owned(),
        message: format!("deploying the agent: {e}"),
    })?;
    let code = status.exit_status(STATUS_WAIT);
    Ok((
        String::from_utf8_lossy(&out).into_owned(),
        code,
        status.stderr_tail(),
    ))
}

/// What the script said: its answer line, and the cache directory when it named one.
struct Answer {
    dir: Option<String>,
    verdict: String,
}

fn answer(out: &str, code: Option<u32>, stderr: &str) -> std::result::Result<Answer, String> {
    let mut dir = None;
    let mut verdict = None;
    for line in out.lines() {
        match line.split_once(' ').unwrap_or((line, "")) {
            ("dir", d) => dir = Some(d.to_owned()),
            ("platform" | "refuse" | "absent" | "mismatch" | "cannot-run" | "ready", _) => {
                verdict = Some(line.to_owned())
            }
            _ => {}
        }
    }
    match verdict {
        Some(verdict) => Ok(Answer { dir, verdict }),
        None => {
            let said = stderr.trim().lines().last().unwrap_or("").trim();
            Err(format!(
                "the remote shell did not run the deployment script (exit status {}){}",
                code.map_or("unknown".into(), |c| c.to_string()),
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ))
        }
    }
}

/// Puts this binary on the host `link` reaches (see the module doc) and says how to start it
/// as the agent, or why it cannot be. `meter` counts the upload as sent.
///
/// Errors: those of the link ([`Error::Unreachable`], transient), when it fails while
/// deploying; every other obstacle is [`Deployed::Unavailable`].
pub fn deploy(link: &dyn AgentConnection, meter: Option<&Arc<Meter>>) -> Result<Deployed> {
    let Some(patterns) = platform_patterns() else {
        return Ok(Deployed::Unavailable(format!(
            "this build ({} {}) cannot be matched to a remote `uname -sm`",
            std::env::consts::OS,
            std::env::consts::ARCH
        )));
    };
    let binary = match this_binary() {
        Ok(binary) => binary,
        Err(why) => return Ok(Deployed::Unavailable(why)),
    };
    let script = shell_quote(&script(&patterns, &binary.name, &binary.sha256));
    let (out, code, stderr) = run_script(link, &format!("sh -c {script} sh probe"))?;
    let first = match answer(&out, code, &stderr) {
        Ok(answer) => answer,
        Err(why) => return Ok(Deployed::Unavailable(why)),
    };
    let Some(dir) = first.dir.clone() else {
        return Ok(verdict(&first.verdict, "", false));
    };
    if !dir.starts_with('/') || dir.contains(['\0', '\n']) {
        return Ok(Deployed::Unavailable(format!(
            "the cache directory {dir:?} is not an absolute path"
        )));
    }
    let path = format!("{dir}/{}/musicfs", binary.name);
    if first.verdict != "absent" {
        return Ok(verdict(&first.verdict, &path, false));
    }
    // Upload to a temporary name, then have the host check it and move it into place.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let temp = format!(".upload-{}-{nanos:09}", std::process::id());
    let temp_path = format!("{dir}/{}/{temp}", binary.name);
    tracing::info!("{}: uploading the agent to {path}", link.origin());
    if let Err(why) = upload(link, &binary.path, temp_path.as_bytes(), meter)? {
        return Ok(Deployed::Unavailable(why));
    }
    let (out, code, stderr) = run_script(
        link,
        &format!("sh -c {script} sh install {}", shell_quote(&temp)),
    )?;
    match answer(&out, code, &stderr) {
        Ok(answer) => Ok(verdict(&answer.verdict, &path, true)),
        Err(why) => Ok(Deployed::Unavailable(why)),
    }
}

/// The script's last word as a result.
fn verdict(verdict: &str, path: &str, uploaded: bool) -> Deployed {
    let (word, rest) = verdict.split_once(' ').unwrap_or((verdict, ""));
    match word {
        "ready" => Deployed::Agent {
            command: format!("{} serve --stdio", shell_quote(path)),
            path: path.to_owned(),
            uploaded,
        },
        "platform" => Deployed::Unavailable(format!(
            "the host is {rest}, this build is for {} {}",
            std::env::consts::OS,
            std::env::consts::ARCH
        )),
        "refuse" => Deployed::Unavailable(rest.to_owned()),
        "mismatch" => Deployed::Unavailable(format!(
            "the uploaded agent's SHA-256 on the host differs from this binary's ({path})"
        )),
        "cannot-run" => {
            let (status, said) = rest.split_once(' ').unwrap_or((rest, ""));
            Deployed::Unavailable(format!(
                "{path} cannot run there (exit status {status}{})",
                if said.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", said.trim())
                }
            ))
        }
        _ => Deployed::Unavailable(format!("unexpected answer from the host: {verdict}")),
    }
}

/// Copies the file at `from` to the new remote file `to` (mode 0600 until checked). A
/// failure of the link is an error (the sync is retried); any other is why the agent cannot
/// be deployed.
fn upload(
    link: &dyn AgentConnection,
    from: &std::path::Path,
    to: &[u8],
    meter: Option<&Arc<Meter>>,
) -> Result<std::result::Result<(), String>> {
    let failed = |e: io::Error| match io_kind(&e) {
        ErrorKind::Transient => Err(Error::Unreachable {
            origin: link.origin().to_owned(),
            message: format!("uploading the agent: {e}"),
        }),
        _ => Ok(Err(format!("cannot upload the agent: {e}"))),
    };
    let mut source = match std::fs::File::open(from) {
        Ok(file) => file,
        Err(e) => return Ok(Err(format!("cannot read {}: {e}", from.display()))),
    };
    let target = match link.create_file(to, 0o600) {
        Ok(target) => target,
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => return Ok(Err(format!("cannot upload the agent: {e}"))),
    };
    let mut target: Box<dyn Write + Send> = match meter {
        Some(meter) => Box::new(MeteredStream::new(target, Arc::clone(meter))),
        None => target,
    };
    if let Err(e) = io::copy(&mut source, &mut target) {
        return failed(e);
    }
    if let Err(e) = target.flush() {
        return failed(e);
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_matched_as_uname_prints_them() {
        assert_eq!(
            platform_names("linux", "x86_64").as_deref(),
            Some("'Linux x86_64'|'Linux amd64'")
        );
        assert_eq!(
            platform_names("macos", "aarch64").as_deref(),
            Some("'Darwin aarch64'|'Darwin arm64'")
        );
        assert_eq!(platform_names("windows", "x86_64"), None);
        assert_eq!(platform_names("linux", "mips"), None);
    }

    #[test]
    fn words_are_quoted_for_a_posix_shell() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_script_can_be_single_quoted() {
        let s = script("'Linux x86_64'", "0123456789abcdef", "ab");
        // The patterns hold the only single quotes; shell_quote escapes them.
        assert_eq!(s.matches('\'').count(), 2);
    }

    #[test]
    fn answers_become_verdicts() {
        let a = answer("dir /h/.cache/musicfs/agent\nabsent\n", Some(0), "").expect("answer");
        assert_eq!(a.dir.as_deref(), Some("/h/.cache/musicfs/agent"));
        assert_eq!(a.verdict, "absent");
        assert!(answer("", Some(127), "sh: not found\n")
            .err()
            .is_some_and(|e| e.contains("127") && e.contains("sh: not found")));
        assert_eq!(
            verdict("ready musicfs 0.1.0", "/h/x/musicfs", true),
            Deployed::Agent {
                command: "'/h/x/musicfs' serve --stdio".into(),
                path: "/h/x/musicfs".into(),
                uploaded: true
            }
        );
        assert!(matches!(
            verdict("cannot-run 126 Permission denied", "/p", false),
            Deployed::Unavailable(why) if why.contains("126") && why.contains("Permission denied")
        ));
        assert!(matches!(
            verdict("platform Linux riscv64", "", false),
            Deployed::Unavailable(why) if why.contains("Linux riscv64")
        ));
    }

    #[test]
    fn this_binary_is_named_by_its_hash() {
        let binary = this_binary().expect("this binary");
        assert_eq!(binary.name.len(), 16);
        assert_eq!(binary.sha256.len(), 64);
        assert!(binary.name.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
