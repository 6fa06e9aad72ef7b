#!/usr/bin/env python3
"""How a client replaced files on the server: watch a directory tree with inotify (on the
server's side of the share) and say, per file renamed onto an existing name, whether the old
file was deleted first (a window in which the name does not exist) or replaced in one rename.

    watch-replace.py DIR     prints "ready" once watching; on SIGTERM or SIGINT prints
                             "replaced=N deleted_first=M" and exits

Python 3 standard library only (inotify through ctypes; Linux).
"""

import ctypes
import os
import signal
import struct
import sys

IN_MOVED_TO = 0x00000080
IN_DELETE = 0x00000200

libc = ctypes.CDLL(None, use_errno=True)


def main() -> None:
    root = sys.argv[1]
    fd = libc.inotify_init()
    if fd < 0:
        sys.exit("watch-replace: inotify_init failed")
    dirs = {}
    for path, _, _ in os.walk(root):
        wd = libc.inotify_add_watch(fd, path.encode(), IN_MOVED_TO | IN_DELETE)
        if wd < 0:
            sys.exit(f"watch-replace: cannot watch {path}")
        dirs[wd] = path
    deleted = set()
    counts = {"replaced": 0, "deleted_first": 0}

    def stop(*_):
        print(f"replaced={counts['replaced']} deleted_first={counts['deleted_first']}", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready", flush=True)
    while True:
        buf = os.read(fd, 65536)
        at = 0
        while at < len(buf):
            wd, mask, _, length = struct.unpack_from("iIII", buf, at)
            name = buf[at + 16 : at + 16 + length].rstrip(b"\0")
            at += 16 + length
            key = (wd, name)
            if mask & IN_DELETE:
                deleted.add(key)
            elif mask & IN_MOVED_TO:
                if key in deleted:
                    deleted.discard(key)
                    counts["deleted_first"] += 1
                else:
                    counts["replaced"] += 1


if __name__ == "__main__":
    main()
