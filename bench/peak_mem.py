#!/usr/bin/env python3
"""Runs a command and prints its peak memory in MiB, polling /proc every 10 ms:
`ANON TOTAL` — anonymous memory (heap, stacks: what the process allocates)
and total resident memory (anonymous plus file pages it has mapped, such as
an mmap-ed filesystem image, which the kernel can drop at any time).
Usage: peak_mem.py COMMAND [ARGS...]   (the command's output is discarded)"""
import subprocess
import sys
import time


def sample(pid):
    anon = total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    total = int(line.split()[1])
    except OSError:
        pass
    return anon, total


def main():
    p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_anon = peak_total = 0
    while p.poll() is None:
        a, t = sample(p.pid)
        peak_anon, peak_total = max(peak_anon, a), max(peak_total, t)
        time.sleep(0.01)
    err = p.stderr.read().decode(errors="replace")
    if p.returncode != 0:
        sys.stderr.write(err)
        sys.exit(p.returncode)
    print(f"{peak_anon // 1024} {peak_total // 1024}")


main()
