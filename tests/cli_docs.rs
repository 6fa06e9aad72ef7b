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

#[test]
fn man_pages_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .expect("render");
    check(&root.join("man/musicfs.1"), &page);
    for sub in cmd.get_subcommands() {
        let name = format!("musicfs-{}", sub.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().name(name.clone().leak() as &str))
            .render(&mut page)
            .expect("render");
        check(&root.join(format!("man/{name}.1")), &page);
    }
    let main = String::from_utf8(std::fs::read(root.join("man/musicfs.1")).expect("man page"))
        .expect("utf-8");
    assert!(
        main.contains("Exit codes"),
        "the man page documents exit codes"
    );
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
