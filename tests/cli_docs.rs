//! The man pages in `man/` and the completions in `completions/` are generated from the clap
//! definitions; this test fails when they drift from the CLI. To regenerate them after a CLI
//! change, run `MUSICFS_UPDATE_GOLDEN=1 cargo test --test cli_docs`.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use musicfs::cli::Cli;

fn check(path: &Path, generated: &[u8]) {
    if std::env::var_os("MUSICFS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, generated).expect("write");
        return;
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the CLI; run MUSICFS_UPDATE_GOLDEN=1 cargo test --test cli_docs",
        path.display()
    );
}

/// roff for text that may start with a `.` or `'` or hold a backslash.
fn escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e");
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A page: clap_mangen's sections, then EXAMPLES (the command's `after_help` examples),
/// ENVIRONMENT (the main page), EXIT STATUS and SEE ALSO.
fn page(cmd: &clap::Command, main: bool) -> Vec<u8> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out).expect("title");
    man.render_name_section(&mut out).expect("name");
    man.render_synopsis_section(&mut out).expect("synopsis");
    man.render_description_section(&mut out)
        .expect("description");
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).expect("options");
    }
    if main {
        man.render_subcommands_section(&mut out)
            .expect("subcommands");
    }
    let mut text = String::new();
    let after = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    if let Some(examples) = after.split("\n\n").find(|p| p.starts_with("Examples:")) {
        let body = examples
            .trim_start_matches("Examples:")
            .trim_start_matches('\n');
        text.push_str(&format!(".SH EXAMPLES\n.nf\n{}\n.fi\n", escape(body)));
    }
    if main {
        text.push_str(".SH ENVIRONMENT\n");
        for (name, meaning) in musicfs::cli::ENVIRONMENT {
            text.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                escape(name),
                escape(meaning)
            ));
        }
        text.push_str(
            ".SH FILES\n.TP\n$XDG_CONFIG_HOME/musicfs/config.toml\nThe configuration file \
             (~/.config/musicfs/config.toml when XDG_CONFIG_HOME is unset).\n.TP\n\
             $XDG_DATA_HOME/musicfs\nThe default repository (~/.local/share/musicfs).\n",
        );
    }
    text.push_str(&format!(
        ".SH \"EXIT STATUS\"\n{}\n",
        escape(musicfs::cli::EXIT_STATUS)
    ));
    if main {
        man.render_version_section(&mut out).expect("version");
    } else {
        text.push_str(".SH \"SEE ALSO\"\n\\fBmusicfs\\fR(1)\n");
    }
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn man_pages_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Cli::command();
    // Built, so that the global options (--repo, --json, -q, -v) are on every subcommand's
    // page and `help` is a subcommand with a page of its own.
    cmd.build();
    check(&root.join("man/musicfs.1"), &page(&cmd, true));
    for sub in cmd.get_subcommands() {
        let name = format!("musicfs-{}", sub.get_name());
        let sub = sub.clone().name(name.clone().leak() as &str);
        check(&root.join(format!("man/{name}.1")), &page(&sub, false));
    }
    let sync = String::from_utf8(std::fs::read(root.join("man/musicfs-sync.1")).expect("man page"))
        .expect("utf-8");
    for section in [
        ".SH EXAMPLES",
        ".SH \"EXIT STATUS\"",
        "\\-\\-repo",
        "\\-\\-json",
    ] {
        assert!(sync.contains(section), "musicfs-sync(1) lacks {section}");
    }
    let main = String::from_utf8(std::fs::read(root.join("man/musicfs.1")).expect("man page"))
        .expect("utf-8");
    for section in [".SH ENVIRONMENT", ".SH \"EXIT STATUS\"", "MUSICFS_REPO"] {
        assert!(main.contains(section), "musicfs(1) lacks {section}");
    }
    // Every page a page refers to exists.
    for entry in std::fs::read_dir(root.join("man")).expect("man/") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("page");
        for (at, _) in text.match_indices("\\fBmusicfs\\-") {
            let rest = &text[at + "\\fBmusicfs\\-".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let file = root.join(format!("man/musicfs-{name}.1"));
            assert!(file.exists(), "a page refers to missing {}", file.display());
        }
    }
}

#[test]
fn completions_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        (Shell::Bash, "musicfs.bash"),
        (Shell::Zsh, "_musicfs"),
        (Shell::Fish, "musicfs.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "musicfs", &mut out);
        check(&root.join("completions").join(file), &out);
    }
}
