#!/usr/bin/env python3
"""The disk's own fsynced write bandwidth, measured the way Hangar writes blocks.

    bench/disk-bandwidth.py DIR [--files 256] [--size-mib 1] [--concurrency 8] [--direct]

Writes FILES new files of SIZE MiB in DIR (on the disk to measure) from CONCURRENCY
threads, each file written whole, fsynced, then its directory fsynced — what a block
write with durability on costs — and prints MiB/s. Issue 8's target compares Hangar's
large-PUT throughput with this figure divided by the replication factor. Random bytes, so
no layer below can compress or deduplicate them. Standard library only.

--direct writes with O_DIRECT from a page-aligned buffer, as Hangar writes block files of
64 KiB or more on Linux (docs/architecture.md); without it, through the page cache. The
disk's own bandwidth is the better of the two.
"""
import argparse
import mmap
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
    ap.add_argument("--direct", action="store_true", help="write with O_DIRECT")
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
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_DIRECT if args.direct else 0)
            fd = os.open(path, flags, 0o644)
            try:
                body = i.to_bytes(8, "little") + data[8:]
                if args.direct:
                    # An anonymous mapping is page-aligned, as O_DIRECT needs.
                    aligned = mmap.mmap(-1, len(body))
                    aligned.write(body)
                    body = aligned
                written = os.write(fd, body)
                # (--size-mib 0 writes just those 8 bytes: the cost of an fsync alone.)
                assert written == len(body), f"short write: {written} of {len(body)} bytes"
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
          f"{args.concurrency}, {'O_DIRECT, ' if args.direct else ''}each fsynced with its "
          f"directory: {elapsed:.2f} s, "
          f"{mib / elapsed:.1f} MiB/s, {elapsed * 1000 / args.files:.2f} ms a file")


if __name__ == "__main__":
    main()
