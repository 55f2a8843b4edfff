#!/usr/bin/env python3
"""Seeded synthetic disk images for osbackup's demo and benchmarks.

make:   gen-disk-image.py make IMAGE --size 4G [--seed 1]
        Runs of 1 to 16 MiB, 1 MiB-aligned: 40% zeros, 30% random bytes, 30% log text.
mutate: gen-disk-image.py mutate IMAGE [--seed 2] [--percent 1] [--region 32M] [--block 64K]
        "Day 2": rewrites PERCENT% of the BLOCK-sized blocks at scattered places with random bytes and
        one REGION-sized run at a random 1 MiB-aligned place; prints the bytes written.
The same arguments always give the same bytes.
"""
import argparse
import os
import random
import sys

MIB = 1 << 20


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


WORDS = ("INFO DEBUG WARN ERROR nova-compute cinder-volume request completed volume attached snapshot "
         "created instance boot token issued GET POST DELETE /v3/volumes /servers/detail status=200 "
         "status=404 took ms bytes user project host proxy backup").split()


def text_run(rng, size):
    lines = []
    total = 0
    while total < size:
        line = "2026-11-%02d %02d:%02d:%02d.%03d %s %s\n" % (
            rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59), rng.randint(0, 999),
            rng.choice(WORDS[:4]), " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))))
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def make(path, size, seed):
    rng = random.Random(seed)
    # Text runs are slices of one seeded 8 MiB pool of log lines: as compressible as logs, and fast to make.
    pool = text_run(random.Random(seed + 1000), 8 * MIB)
    with open(path, "wb") as image:
        image.truncate(size)
        offset = 0
        while offset < size:
            length = min(size - offset, rng.randint(1, 16) * MIB)
            kind = rng.random()
            if kind >= 0.4:
                image.seek(offset)
                done = 0
                while done < length:
                    piece = min(4 * MIB, length - done)
                    if kind < 0.7:
                        image.write(rng.randbytes(piece))
                    else:
                        start = rng.randrange(0, len(pool) - piece + 1)
                        image.write(pool[start:start + piece])
                    done += piece
            offset += length


def mutate(path, seed, percent, region, block):
    rng = random.Random(seed)
    size = os.path.getsize(path)
    blocks = size // block
    written = 0
    with open(path, "r+b") as image:
        for index in rng.sample(range(blocks), int(blocks * percent / 100)):
            image.seek(index * block)
            image.write(rng.randbytes(block))
            written += block
        if region:
            start = rng.randrange(0, max(1, (size - region) // MIB)) * MIB
            image.seek(start)
            for done in range(0, region, 4 * MIB):
                image.write(rng.randbytes(min(4 * MIB, region - done)))
            written += region
    print(written)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make_parser = sub.add_parser("make")
    make_parser.add_argument("image")
    make_parser.add_argument("--size", default="4G")
    make_parser.add_argument("--seed", type=int, default=1)
    mutate_parser = sub.add_parser("mutate")
    mutate_parser.add_argument("image")
    mutate_parser.add_argument("--seed", type=int, default=2)
    mutate_parser.add_argument("--percent", type=float, default=1.0)
    mutate_parser.add_argument("--region", default="32M")
    mutate_parser.add_argument("--block", default="64K")
    args = parser.parse_args()
    if args.command == "make":
        make(args.image, parse_size(args.size), args.seed)
    else:
        mutate(args.image, args.seed, args.percent, parse_size(args.region), parse_size(args.block))


if __name__ == "__main__":
    sys.exit(main())
