# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_musicfs_global_optspecs
    string join \n repo= json q/quiet v/verbose log-file= h/help V/version
end

function __fish_musicfs_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_musicfs_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_musicfs_using_subcommand
    set -l cmd (__fish_musicfs_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c musicfs -n "__fish_musicfs_needs_command" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_needs_command" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_needs_command" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_needs_command" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_needs_command" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_needs_command" -s h -l help -d 'Print help'
complete -c musicfs -n "__fish_musicfs_needs_command" -s V -l version -d 'Print version'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "init" -d 'Create a repository'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "scan" -d 'Index an origin into the repository (incremental)'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "sync" -d 'Make DST an exact copy of SRC, moving only missing chunks'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "verify" -d 'Prove repository objects and an origin\'s files against their snapshot'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "diff" -d 'Show what changed between two snapshots, in files and in tags'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "snapshots" -d 'List snapshots'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "forget" -d 'Remove snapshots according to a retention policy (restic\'s --keep-* rules)'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "gc" -d 'Remove what no snapshot refers to, and compact the index'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "check" -d 'Check that the repository\'s index is whole'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "repair-index" -d 'Rebuild a damaged index from what can still be read of it'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "mount" -d 'Mount every snapshot read-only (FUSE)'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "inspect" -d 'Show a file\'s container, regions, chunks, audio hash and tags'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "serve" -d 'The remote end of an SSH sync (started by musicfs itself)'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "config" -d 'Print the effective settings, and where each comes from'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c musicfs -n "__fish_musicfs_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -l chunker -d 'How the new repository or store cuts files: fastcdc-2020-fixed-pictures (audio and embedded pictures in fixed 64 KiB pieces), fastcdc-2020-fixed-audio (audio only, as repositories and stores made before it) or fastcdc-2020 (everything by content, as the first releases), to sync with those [default: fastcdc-2020-fixed-pictures, or for a store the local repository\'s]' -r -f -a "fastcdc-2020-fixed-pictures\t''
fastcdc-2020-fixed-audio\t''
fastcdc-2020\t''"
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand init" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l exclude -d 'Leave out entries matching PATTERN (rsync\'s rules, --help tells them)' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l include -d 'Keep entries matching PATTERN, whatever later rules say' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l exclude-from -d 'Read exclude patterns from FILE (- for standard input), one per line; blank lines and lines starting with # or ; are skipped, and a line starting with "+ " or "- " is an include or exclude rule' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s c -l checksum -d 'Read every file, even those whose size, times and inode are unchanged'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s x -l one-file-system -d 'Don\'t cross file system boundaries in a local directory: a directory on which another file system is mounted is recorded as an empty directory (a musicfs mount is always left out)'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l no-default-excludes -d 'Don\'t leave out operating-system litter, which is excluded by default after the other rules (names at any depth, case ignored): .DS_Store ._* .AppleDouble Thumbs.db desktop.ini $RECYCLE.BIN @eaDir'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand scan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l library -d 'With a chunk store: the library to push to or pull from [default: the store\'s only library; for the first push, the last component of the store\'s prefix]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l max-delete -d 'With --delete: delete nothing (and exit 3) when the deletions would remove more than N files and symlinks, as a guard against a source that went missing' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l bwlimit -d 'Limit what crosses to or from the other side to RATE per second, all streams together, as rsync reads it: 500K, 10M, 1.5M (K, M, G are powers of 1024; KB, MB powers of 1000; no unit means K; 0 means no limit). In a local sync it limits what is written into DST' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l exclude -d 'Leave out entries matching PATTERN (rsync\'s rules, --help tells them)' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l include -d 'Keep entries matching PATTERN, whatever later rules say' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l exclude-from -d 'Read exclude patterns from FILE (- for standard input), one per line; blank lines and lines starting with # or ; are skipped, and a line starting with "+ " or "- " is an include or exclude rule' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l remote-musicfs -d 'The musicfs command on the remote host, run by its shell [default: musicfs on the remote PATH, else SFTP]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l delete -d 'Remove files and directories absent from SRC (entries the filters exclude at DST are kept, and so are the directories that hold them)'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l delete-excluded -d 'Also delete what the filters exclude at DST (implies --delete), as rsync\'s --delete-excluded: DST is walked without the filters'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s n -l dry-run -d 'Print the plan and the bytes it would move; write nothing'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s c -l checksum -d 'Read every source file, even those whose metadata is unchanged (an origin SRC; a snapshot is not read)'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s x -l one-file-system -d 'Don\'t cross file system boundaries in a local SRC or DST: a mount point is copied as an empty directory, and --delete deletes nothing inside one (a musicfs mount is always left out)'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l no-default-excludes -d 'Don\'t leave out operating-system litter, which is excluded by default after the other rules (names at any depth, case ignored): .DS_Store ._* .AppleDouble Thumbs.db desktop.ini $RECYCLE.BIN @eaDir'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l sftp -d 'Use SFTP even when the remote host has musicfs'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l deploy-agent -d 'When the remote host has no musicfs but runs the same OS on the same architecture, copy this binary over SFTP to ~/.cache/musicfs/agent/HASH/ there (checked by its SHA-256 before it runs, older versions removed) and run it as the remote musicfs; if it cannot run there, use SFTP. --remote-musicfs, when given, is run instead'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand sync" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l repair-from -d 'Rebuild each damaged file of ORIGIN from good chunks: the file\'s undamaged chunks, then the same path in this origin (a mirror: a directory, an SSH origin or a configured name), any location the repository records, and its history; each rebuilt file is read back whole before it replaces the damaged one. Edited and missing files are left alone' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l exclude -d 'Leave out entries matching PATTERN (rsync\'s rules, --help tells them)' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l include -d 'Keep entries matching PATTERN, whatever later rules say' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l exclude-from -d 'Read exclude patterns from FILE (- for standard input), one per line; blank lines and lines starting with # or ; are skipped, and a line starting with "+ " or "- " is an include or exclude rule' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l name-only -d 'Print only the changed paths, one per line (B\'s path; A\'s for a removed file)'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l stat -d 'Print the counts per directory and class, then the summary'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -s x -l one-file-system -d 'Don\'t cross file system boundaries in a local directory operand: a directory on which another file system is mounted is scanned as an empty directory (a musicfs mount is always left out)'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l no-default-excludes -d 'Don\'t leave out operating-system litter, which is excluded by default after the other rules (names at any depth, case ignored): .DS_Store ._* .AppleDouble Thumbs.db desktop.ini $RECYCLE.BIN @eaDir'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l utc -d 'Print times in UTC (2026-11-24 20:13:05Z) instead of the local time zone (TZ, else /etc/localtime) with its offset (2026-11-24 21:13:05+01:00)'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand snapshots" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s l -l keep-last -d 'Keep the N newest snapshots' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s H -l keep-hourly -d 'Keep the newest snapshot of each of the last N hours that have one' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s d -l keep-daily -d 'Keep the newest snapshot of each of the last N days that have one' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s w -l keep-weekly -d 'Keep the newest snapshot of each of the last N ISO weeks (Monday to Sunday) that have one' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s m -l keep-monthly -d 'Keep the newest snapshot of each of the last N months that have one' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s y -l keep-yearly -d 'Keep the newest snapshot of each of the last N years that have one' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s n -l dry-run -d 'Print what would be kept and removed; remove nothing'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand forget" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -l grace -d 'With a chunk store: how long a pack stays marked before a gc removes it, longer than any push takes (90m, 24h, 3d; 0 removes at once what was marked before) [default: 24h]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -s n -l dry-run -d 'Print what would be removed; change nothing (and do not compact)'
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand gc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand repair-index" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l cache-size -d 'Memory for verified chunks, in MiB' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l retries -d 'At most N retries after a dropped connection or a timeout [default: 3 while the host has never answered; then no cap but --retry-for]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l retry-for -d 'Once the host has answered, keep retrying a sync that failed for a transient reason (a dropped link, a timeout) with capped exponential backoff until DURATION has passed since the last attempt that reached it: 90s, 10m, 1h [default: 5m]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l timeout -d 'Seconds allowed to connect, and to wait on a silent remote [default: 30]' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -s e -l rsh -d 'Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in client, as rsync\'s -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and OpenSSH\'s own host-key checking then apply' -r
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -s f -l foreground -d 'Stay in the foreground (otherwise the mount is served by a detached process)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l nonempty -d 'Mount even if MOUNTPOINT is not empty (its files are hidden until unmounted)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l allow-other -d 'Let every user read the mount, as file modes allow (FUSE\'s allow_other; a user other than root needs `user_allow_other` in /etc/fuse.conf)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l allow-root -d 'Let root read the mount too (FUSE\'s allow_root; a user other than root needs `user_allow_other` in /etc/fuse.conf)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l accept-new-host-key -d 'Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet (a changed key is always refused)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l report-ready -d 'Once mounted, write `ready DEVICE` on stdout (how a detached server reports)'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand mount" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -l stdio -d 'Speak the sync protocol on standard input and output (how `musicfs sync` starts it over SSH)'
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand serve" -s h -l help -d 'Print help'
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand config" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -l repo -d 'Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on first use]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -l log-file -d 'Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE, each line stamped with the time in UTC, then one line per run: what ran, its exit status, what it did and how long it took. For `mount`, the mount\'s log instead (its warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount: $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]' -r -F
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -l json -d 'Print JSON Lines (one object per line, each with a "type") on stdout'
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -s q -l quiet -d 'Print only problems'
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -s v -l verbose -d 'Print every step'
complete -c musicfs -n "__fish_musicfs_using_subcommand completions" -s h -l help -d 'Print help'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "init" -d 'Create a repository'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "scan" -d 'Index an origin into the repository (incremental)'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "sync" -d 'Make DST an exact copy of SRC, moving only missing chunks'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "verify" -d 'Prove repository objects and an origin\'s files against their snapshot'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "diff" -d 'Show what changed between two snapshots, in files and in tags'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "snapshots" -d 'List snapshots'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "forget" -d 'Remove snapshots according to a retention policy (restic\'s --keep-* rules)'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "gc" -d 'Remove what no snapshot refers to, and compact the index'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "check" -d 'Check that the repository\'s index is whole'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "repair-index" -d 'Rebuild a damaged index from what can still be read of it'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "mount" -d 'Mount every snapshot read-only (FUSE)'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "inspect" -d 'Show a file\'s container, regions, chunks, audio hash and tags'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "serve" -d 'The remote end of an SSH sync (started by musicfs itself)'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "config" -d 'Print the effective settings, and where each comes from'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "completions" -d 'Print shell completions'
complete -c musicfs -n "__fish_musicfs_using_subcommand help; and not __fish_seen_subcommand_from init scan sync verify diff snapshots forget gc check repair-index mount inspect serve config completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
