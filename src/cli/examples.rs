//! Examples shown at the end of each subcommand's `--help` and in its man page's EXAMPLES
//! section (`tests/cli_docs.rs` renders them from the same text).

pub const INIT: &str = "\
Examples:
  musicfs init                         create the default repository ($XDG_DATA_HOME/musicfs)
  musicfs init /srv/musicfs            create one elsewhere; then --repo /srv/musicfs or
                                       MUSICFS_REPO=/srv/musicfs, or repo = in config.toml";

pub const SCAN: &str = "\
Examples:
  musicfs scan ~/Music                 index a library (unchanged files are not read again)
  musicfs scan -c ~/Music              read every file, whatever its metadata says
  musicfs scan nas:/music              index an SSH origin (read over SFTP)
  musicfs scan --exclude '*.part' ~/Music";

pub const SYNC: &str = "\
Examples:
  musicfs sync /mnt/nas/music ~/Music          mirror a library
  musicfs sync -n --delete SRC DST             show what a mirror would do, write nothing
  musicfs sync --delete --max-delete 500 nas:/music ~/Music
                                               from cron: delete nothing if SRC seems gone
  musicfs sync ~/Music nas:/backup/music       push to an SSH host
  musicfs sync -e ssh nas:/music ~/Music       through the system OpenSSH (ProxyJump, ...)
  musicfs sync smb://alice@nas/music ~/Music   an SMB share, no mount (MUSICFS_SMB_PASSWORD)
  musicfs sync ~/Music nfs://nas/srv/music     an NFS export, no mount, no root
  musicfs sync --bwlimit 2M nas ~/Music        a named origin ([origin.nas] in config.toml)
  musicfs sync ~/Music@yesterday /tmp/music    restore a snapshot (or its id, 3f2a9c1e)";

pub const VERIFY: &str = "\
Examples:
  musicfs verify ~/Music               re-read every file against its snapshot
  musicfs --json verify ~/Music        one JSON line per file that is not ok, then a summary
  musicfs verify                       only the repository's objects
  musicfs verify ~/Music --repair-from nas:/music
                                       rebuild damaged files from a mirror's good chunks";

pub const DIFF: &str = "\
Examples:
  musicfs diff ~/Music                         what changed since the last scan
  musicfs diff ~/Music@2026-11-01 ~/Music      since a date (local time)
  musicfs diff ~/Music@yesterday ~/Music       since yesterday
  musicfs diff /mnt/player ~/Music             what `sync ~/Music /mnt/player` would change
  musicfs diff --stat 1a2b3c4d 5e6f7a8b        two snapshots, counts per directory";

pub const SNAPSHOTS: &str = "\
Examples:
  musicfs snapshots                    every snapshot, times in the local zone
  musicfs snapshots --utc ~/Music      one origin's, in UTC
  musicfs --json snapshots             one JSON object per snapshot";

pub const FORGET: &str = "\
Examples:
  musicfs forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12
  musicfs forget ~/Music --keep-last 10 --dry-run
  musicfs gc                           then drop what no snapshot references";

pub const GC: &str = "\
Examples:
  musicfs gc --dry-run                 what would be removed
  musicfs forget --keep-last 30 && musicfs gc";

pub const CHECK: &str = "\
Examples:
  musicfs check                        exit 0 whole, 1 damaged (then: musicfs repair-index)";

pub const REPAIR_INDEX: &str = "\
Examples:
  musicfs repair-index                 keeps the damaged index as index.redb.damaged-TIME";

pub const MOUNT: &str = "\
Examples:
  musicfs mount ~/mnt                  every snapshot under ~/mnt/ORIGIN/TIME/
  ls ~/mnt/home_me_Music/latest/       the newest snapshot of /home/me/Music
  fusermount3 -u ~/mnt                 unmount";

pub const INSPECT: &str = "\
Examples:
  musicfs inspect track.flac           container, regions, chunks, audio hash and tags
  musicfs --json inspect *.mp3         one JSON object per file";

pub const SERVE: &str = "\
Examples:
  (started by musicfs itself over SSH: `ssh HOST musicfs serve --stdio`)";

pub const CONFIG: &str = "\
Examples:
  musicfs config                       every setting, its value and where it came from
  musicfs config nas                   the settings a command given the origin nas uses
  musicfs --json config";

pub const COMPLETIONS: &str = "\
Examples:
  musicfs completions bash > /etc/bash_completion.d/musicfs
  musicfs completions zsh > ~/.zfunc/_musicfs";
