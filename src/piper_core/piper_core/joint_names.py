"""Which joint of a received JointState is which: the start-up check of an arm driver's joint names.

The suite's order of every 7-vector is ``joint1..joint6, gripper`` (:data:`piper_core.layout.JOINT_NAMES`), which
the simulator and the current AgileX piper_ros driver publish. Older piper_ros revisions (e.g. Piper_ros branch
``ros-humble-no-aloha``, commit 8e5a686, the one docker/Dockerfile pins) publish ``joint0..joint6`` instead:
``joint0..joint5`` are motors 1..6 and ``joint6`` is the gripper opening in metres. A consumer that looked the
expected names up would drop every message and hold forever without a word; instead it builds a
:class:`JointNameMap` from its configuration and calls :meth:`JointNameMap.order` on the first message, which
either returns the indices to read or raises :class:`JointNameError` with one line naming both name lists.

Configuration (a string, e.g. a ROS parameter):

    ``auto``              (default) the suite's names, or exactly the legacy ``joint0..joint6`` set
    ``identity`` / ``''`` the suite's names only
    ``piper_ros_legacy``  ``joint0..joint5 -> joint1..joint6``, ``joint6 -> gripper``
    ``a:b,c:d``           a custom map from received to expected names (unmapped names pass through)
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

from piper_core.layout import JOINT_NAMES

LEGACY_PIPER_ROS_NAMES = tuple(f'joint{i}' for i in range(7))     # joint0..joint6 (older piper_ros revisions)
PRESETS: dict[str, dict[str, str]] = {
    'identity': {},
    'piper_ros_legacy': dict(zip(LEGACY_PIPER_ROS_NAMES, JOINT_NAMES)),
}
AUTO = 'auto'


class JointNameError(ValueError):
    """The received joint names cannot be mapped onto the expected ones (one line, both lists named)."""


@dataclasses.dataclass(frozen=True)
class JointNameMap:
    """Maps received joint names onto `expected` (received name -> expected name; unmapped names pass through)."""

    mapping: Mapping[str, str]
    label: str = 'identity'
    expected: tuple[str, ...] = JOINT_NAMES
    auto: bool = False            # also accept the legacy piper_ros names without being told

    def canonical(self, received: Sequence[str]) -> tuple[str, ...]:
        """`received` with the map applied."""
        return tuple(self.mapping.get(n, n) for n in received)

    def order(self, received: Sequence[str]) -> tuple[int, ...]:
        """Indices into `received` that give the values in `expected` order; JointNameError if any is missing.

        Extra received names are ignored (drivers may publish more); a name that appears twice is an error."""
        received = tuple(received)
        candidates = [self]
        if self.auto and set(received) == set(LEGACY_PIPER_ROS_NAMES):
            candidates.append(name_map('piper_ros_legacy', self.expected))
        for candidate in candidates:
            names = candidate.canonical(received)
            if len(set(names)) == len(names) and set(self.expected) <= set(names):
                return tuple(names.index(e) for e in self.expected)
        raise JointNameError(self._mismatch(received))

    def _mismatch(self, received: tuple[str, ...]) -> str:
        names = self.canonical(received)
        missing = [e for e in self.expected if e not in names]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        mapped = '' if names == received else f' (after the {self.label} name map: {list(names)})'
        problem = f'missing {missing}' if missing else f'duplicated {duplicated}'
        hint = ''
        for preset, mapping in PRESETS.items():
            if preset != self.label and set(self.expected) <= {mapping.get(n, n) for n in received}:
                hint = f'; joint_name_map:={preset} fits these names'
                break
        return (f'joint names {list(received)}{mapped} do not give the expected {list(self.expected)}: '
                f'{problem}{hint}')

    def select(self, received: Sequence[str], values: Sequence[float]) -> list[float]:
        """`values` (aligned with `received`) in `expected` order; JointNameError as in :meth:`order`."""
        idx = self.order(received)
        if max(idx) >= len(values):
            raise JointNameError(f'joint names {list(received)} but only {len(values)} values')
        return [float(values[i]) for i in idx]


def name_map(spec: str | Mapping[str, str] | Sequence[str] = AUTO,
             expected: Sequence[str] = JOINT_NAMES) -> JointNameMap:
    """A JointNameMap from a preset name, ``'a:b,c:d'`` text, a list of ``'a:b'`` items or a dict (see module doc)."""
    expected = tuple(expected)
    if isinstance(spec, Mapping):
        return JointNameMap(dict(spec), 'custom', expected)
    if not isinstance(spec, str):
        spec = ','.join(spec)
    text = spec.strip()
    if text in ('', 'identity'):
        return JointNameMap({}, 'identity', expected)
    if text == AUTO:
        return JointNameMap({}, AUTO, expected, auto=True)
    if text in PRESETS:
        return JointNameMap(dict(PRESETS[text]), text, expected)
    mapping = {}
    for item in text.split(','):
        src, sep, dst = item.partition(':')
        if not sep or not src.strip() or not dst.strip():
            raise JointNameError(f"joint_name_map {spec!r}: expected {', '.join([AUTO, *PRESETS])} or "
                                 f"'received:expected,...' items, got {item.strip()!r}")
        mapping[src.strip()] = dst.strip()
    return JointNameMap(mapping, 'custom', expected)
