"""Stress writer process: publishes as fast as it can until SIGTERM/SIGINT, then closes (unlinks) cleanly.

Every byte of version v's payload is fill_byte(v), so any mix of two versions is visible to the reader
without a checksum. Usage: python _context_stress_writer.py PREFIX L T H D NUM_SLOTS CHECKSUM
"""
import signal
import sys

import numpy as np
import torch

from aha_wam.context import ContextLayout, ContextWriter, PlannerContext


def fill_byte(version: int) -> int:
    return version % 255 + 1


def main() -> int:
    prefix, L, T, H, D, slots, checksum = sys.argv[1], *map(int, sys.argv[2:7]), sys.argv[7]
    layout = ContextLayout(L, T, H, D, 'float32')

    def stop(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    buf = np.empty(layout.nbytes, np.uint8)
    kv = torch.from_numpy(buf).view(torch.float32).reshape(layout.shape)
    writer = ContextWriter(layout, 'stress', prefix=prefix, num_slots=slots, checksum=checksum)
    print('READY', writer.segment_name, flush=True)
    version = 0
    try:
        while True:
            version += 1
            buf.fill(fill_byte(version))
            writer.publish(PlannerContext(kv=kv, layout=layout, frame_index=version, version=version))
    except KeyboardInterrupt:
        pass
    finally:
        writer.close()
        print('DONE', version, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
