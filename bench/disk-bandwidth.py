#!/usr/bin/env python3
"""The disk's own fsynced write bandwidth, measured the way Hangar writes blocks.

    bench/disk-bandwidth.py DIR [--files 256] [--size-mib 1] [--concurrency 8]

Writes FILES new files of SIZE MiB in DIR (on the disk to measure) from CONCURRENCY
threads, each file written whole, fsynced, then its directory fsynced — what a block
write with durability on costs — and prints MiB/s. Issue 8's target compares Hangar's
large-PUT throughput with this figure divided by the replication factor. Random bytes, so
no layer below can compress or deduplicate them. Standard library only.
"""
import argparse
import os
import shutil
import tempfile
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=256)
    ap.add_argument("--size-mib", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="disk-bandwidth-", dir=args.dir)
    data = os.urandom(args.size_mib << 20)
    next_file = iter(range(args.files))
    lock = threading.Lock()

    def writer():
        while True:
            with lock:
                i = next(next_file, None)
            if i is None:
                return
            # A different first 8 bytes per file, like distinct blocks.
            path = os.path.join(work, f"{i:06}")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, i.to_bytes(8, "little") + data[8:])
                os.fsync(fd)
            finally:
                os.close(fd)
            dfd = os.open(work, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    started = time.monotonic()
    threads = [threading.Thread(target=writer) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    shutil.rmtree(work)
    mib = args.files * args.size_mib
    print(f"{mib} MiB in {args.files} files of {args.size_mib} MiB, concurrency "
          f"{args.concurrency}, each fsynced with its directory: {elapsed:.2f} s, "
          f"{mib / elapsed:.1f} MiB/s")


if __name__ == "__main__":
    main()
