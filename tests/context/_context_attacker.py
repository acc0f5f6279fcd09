"""A foreign process on the planner's ROS domain that forges planner contexts (test helper, not a tool).

    python _context_attacker.py MODE --rate HZ --duration S [--topic T]

It does what any publisher on the domain can: listen to the planner's descriptors on the context topic
(session id, segment name, layout, slot, version are all in them) and publish its own. Modes:

  poison   (a) inline descriptors claiming the planner's session id, version 2**62, a right-size payload with
           a valid CRC; zeros and NaN payloads alternate
  nan      (b) NaN inline contexts (valid CRC), alternately under a foreign session id and the planner's
  foreign  inline zeros under a foreign session id, valid CRC (only an executor that opted into inline
           contexts would take them: they trust the DDS domain)
  flood    (c) plausible descriptors: copies of the planner's newest shm descriptor with the next versions,
           guessed slots and sequences, forged stamps/frame indices (a replay made fresher), and the
           descriptor itself replayed with an older version

Prints one JSON line when it has seen the planner ('ready') and one at the end ('done') with what it sent
and every version number it forged, so the test can check that none of them ever drove the arms.
"""
from __future__ import annotations

import argparse
import array
import dataclasses
import json
import sys
import time
import zlib

import rclpy
import torch

from aha_wam.context.descriptor import CHECKSUM_CRC32, TRANSPORT_INLINE, TRANSPORT_SHM
from aha_wam.ros.context_msg import CONTEXT_TOPIC, context_qos, context_subscription_qos, descriptor_to_msg
from aha_wam.ros.context_msg import msg_to_descriptor
from aha_wam_msgs.msg import PlannerContext as PlannerContextMsg

FOREIGN_SESSION = 0x0BAD_5E55_10D0_0001
FRESHER_NS = 1_000_000_000       # forged stamps claim the observation is this much newer


def inline_payload(layout, value: float) -> array.array:
    kv = torch.full(layout.shape, value, dtype=layout.torch_dtype)
    out = array.array('B')
    out.frombytes(kv.view(torch.uint8).numpy().tobytes())
    return out


class Forger:
    def __init__(self, planner):
        self.planner = planner            # the newest genuine descriptor seen
        self.count = 0
        self.versions: set[int] = set()

    def inline(self, session_id: int, version: int, value: float):
        p = self.planner
        payload = inline_payload(p.layout(), value)
        desc = dataclasses.replace(p, transport=TRANSPORT_INLINE, session_id=session_id, version=version,
                                   segment_name='', slot=0, num_slots=1, slot_sequence=0, payload=payload,
                                   checksum_type=CHECKSUM_CRC32, checksum=zlib.crc32(payload),
                                   stamp_ns=time.time_ns(), frame_id=f'forged{self.count}')
        self.versions.add(version)
        return desc

    def next(self, mode: str):
        self.count += 1
        p, i = self.planner, self.count
        if mode == 'poison':
            return self.inline(p.session_id, 2**62, 0.0 if i % 2 else float('nan'))
        if mode == 'nan':
            return self.inline(FOREIGN_SESSION if i % 2 else p.session_id, p.version + 1 + i % 3, float('nan'))
        if mode == 'foreign':
            return self.inline(FOREIGN_SESSION, i, 0.0)
        if mode == 'flood':
            kind = i % 4
            if kind == 0:      # the next versions the planner will publish, in every slot, with guessed sequences
                v = p.version + 1 + (i // 4) % 3
                desc = dataclasses.replace(p, version=v, slot=(p.slot + 1 + i // 4) % p.num_slots,
                                           slot_sequence=p.slot_sequence + 2 * (1 + (i // 4) % 2))
            elif kind == 1:    # a far-future version claiming the planner's slot as it is
                v = p.version + 10**6 + i
                desc = dataclasses.replace(p, version=v)
            elif kind == 2:    # the genuine descriptor made 1 s "fresher" (a stale context kept alive), or moved
                v = p.version  # on 7 frames
                desc = dataclasses.replace(p, stamp_ns=p.stamp_ns + FRESHER_NS) if i % 8 == 2 else \
                    dataclasses.replace(p, frame_index=p.frame_index + 7)
            else:              # an older version replayed into the current slot
                v = max(1, p.version - 1)
                desc = dataclasses.replace(p, version=v)
            desc.frame_id = f'forged{i}'
            if kind != 2:
                self.versions.add(v)
            return desc
        raise ValueError(mode)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('mode', choices=['poison', 'nan', 'foreign', 'flood'])
    ap.add_argument('--rate', type=float, default=20.0)
    ap.add_argument('--duration', type=float, default=10.0)
    ap.add_argument('--topic', default=CONTEXT_TOPIC)
    ap.add_argument('--timeout', type=float, default=60.0)
    args = ap.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node('intruder')
    seen = {}

    def on_msg(msg):
        if msg.transport == TRANSPORT_SHM and not msg.header.frame_id.startswith('forged'):
            seen['desc'] = msg_to_descriptor(msg)

    node.create_subscription(PlannerContextMsg, args.topic, on_msg, context_subscription_qos())
    pub = node.create_publisher(PlannerContextMsg, args.topic, context_qos())
    deadline = time.monotonic() + args.timeout
    while 'desc' not in seen or pub.get_subscription_count() < 1:
        rclpy.spin_once(node, timeout_sec=0.05)
        if time.monotonic() > deadline:
            print(json.dumps({'event': 'error', 'error': 'no planner descriptor seen'}), flush=True)
            return 1
    forger = Forger(seen['desc'])
    print(json.dumps({'event': 'ready', 'session_id': forger.planner.session_id,
                      'segment': forger.planner.segment_name}), flush=True)
    t0 = time.monotonic()
    period = 1.0 / args.rate
    next_t = t0
    kinds: dict[str, int] = {}
    while time.monotonic() - t0 < args.duration:
        forger.planner = seen['desc']                  # always forge against the newest genuine descriptor
        desc = forger.next(args.mode)
        pub.publish(descriptor_to_msg(desc))
        key = f'{desc.transport_name}:{"planner" if desc.session_id == forger.planner.session_id else "foreign"}'
        kinds[key] = kinds.get(key, 0) + 1
        next_t += period
        while True:
            left = next_t - time.monotonic()
            if left <= 0:
                break
            rclpy.spin_once(node, timeout_sec=min(left, 0.01))
    print(json.dumps({'event': 'done', 'mode': args.mode, 'sent': forger.count, 'seconds': time.monotonic() - t0,
                      'kinds': kinds, 'forged_versions': sorted(forger.versions)}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
