#!/usr/bin/env python3
"""Writes N small PNG images (standard library only) for the `clip index` / `clip search` tests.

  make_images.py DIR N [SEED]

Images are spread over DIR/group-XX/ subfolders, with varied sizes (40..140 px), colour types (RGB,
grey, RGBA) and content (a background colour, a gradient, and a few rectangles), deterministic for a
seed. Every fifth image is written with an upper-case .PNG extension.
"""
import os
import random
import struct
import sys
import zlib


def png(width, height, channels, rows):
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + bytes(row) for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def image(rng):
    width, height = rng.randint(40, 140), rng.randint(40, 140)
    channels = rng.choice([3, 3, 3, 1, 4])
    base = [rng.randrange(256) for _ in range(channels)]
    slope = [rng.uniform(-2, 2) for _ in range(channels)]
    rects = []
    for _ in range(rng.randint(1, 4)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        rects.append((x0, y0, x0 + rng.randint(5, 60), y0 + rng.randint(5, 60), [rng.randrange(256) for _ in range(channels)]))
    rows = []
    for y in range(height):
        row = bytearray()
        for x in range(width):
            pixel = [int(b + s * (x + y)) % 256 for b, s in zip(base, slope)]
            for x0, y0, x1, y1, colour in rects:
                if x0 <= x < x1 and y0 <= y < y1:
                    pixel = colour
            if channels == 4:
                pixel[3] = 255 if pixel[3] < 64 else pixel[3]
            row.extend(pixel)
        rows.append(row)
    return png(width, height, channels, rows)


def main():
    directory, count = sys.argv[1], int(sys.argv[2])
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    for i in range(count):
        group = os.path.join(directory, f"group-{i % 10:02d}")
        os.makedirs(group, exist_ok=True)
        with open(os.path.join(group, f"image-{i:05d}.{'PNG' if i % 5 == 4 else 'png'}"), "wb") as f:
            f.write(image(rng))


if __name__ == "__main__":
    main()
