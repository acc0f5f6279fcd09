"""The layering of the workspace, computed from the sources (DESIGN.md §3: imports point down).

    piper_core (robot floor, ROS-free)  <-  aha_wam core (ROS-free)  <-  aha_wam.ros, node packages, CLI
    ros_node_kit (rclpy helpers)        <-  piper_bringup, aha_wam_planner, aha_wam_executor

Every `import` and `from ... import` in src/ counts, function-local ones included (a lazy import is still
a dependency). The test fails on any import cycle between modules and on the forbidden edges below.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / 'src'
ROS_TOPS = {'rclpy', 'rcl_interfaces', 'launch', 'launch_ros', 'ament_index_python', 'builtin_interfaces',
            'sensor_msgs', 'std_msgs', 'std_srvs', 'trajectory_msgs', 'geometry_msgs', 'visualization_msgs',
            'diagnostic_msgs', 'rosgraph_msgs', 'lifecycle_msgs', 'aha_wam_msgs', 'piper_msgs'}

# (importer package or module prefix, imported top-level names it must never reach, why)
FORBIDDEN = [
    ('aha_wam', {'piper_bringup'}, 'the core stands on piper_core, never on the ROS nodes'),
    ('piper_bringup', {'aha_wam', 'aha_wam_planner', 'aha_wam_executor'}, 'robot nodes work without AHA-WAM'),
    ('piper_core', ROS_TOPS | {'aha_wam', 'piper_bringup', 'ros_node_kit', 'aha_wam_planner', 'aha_wam_executor'},
     'the floor is ROS-free and knows nothing above it'),
    ('ros_node_kit', {'aha_wam', 'piper_core', 'piper_bringup'}, 'the node helpers depend on rclpy only'),
]


def python_modules() -> dict[str, Path]:
    """module name -> file, for every Python package under src/<pkg>/<pkg>/."""
    modules = {}
    for init in SRC.glob('*/*/__init__.py'):
        top = init.parent
        for path in top.rglob('*.py'):
            rel = path.relative_to(top.parent).with_suffix('')
            parts = list(rel.parts)
            if parts[-1] == '__init__':
                parts.pop()
            modules['.'.join(parts)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The known modules `name` imports (resolving relative imports and `from pkg import submodule`)."""
    is_pkg = path.name == '__init__.py'
    package = name if is_pkg else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                up = package.split('.')
                up = up[:len(up) - (node.level - 1)] if node.level > 1 else up
                base = '.'.join(up + ([base] if base else []))
            targets = [base] + [f'{base}.{a.name}' for a in node.names]
        for t in targets:
            found.add(t)
    # keep the deepest known module each import names; unknown names keep their top level (rclpy, ...)
    out = set()
    for t in found:
        if t in known:
            out.add(t)
        elif t.split('.')[0] not in {k.split('.')[0] for k in known}:
            out.add(t)
    return out - {name}


def graph() -> dict[str, set[str]]:
    modules = python_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among the known modules (package __init__ re-exports excluded), or None."""
    # A package's __init__ importing its own submodules is how Python packages work, not a cycle.
    def deps(m):
        return {d for d in edges.get(m, ()) if d in edges and not m.startswith(d + '.') and not d.startswith(m + '.')}
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(deps(m)):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                cyc = visit(d)
                if cyc:
                    return cyc
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            cyc = visit(m)
            if cyc:
                return cyc
    return None


def forbidden_edges(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for importer, banned, why in FORBIDDEN:
        for m, deps in edges.items():
            if m == importer or m.startswith(importer + '.'):
                for d in deps:
                    if d.split('.')[0] in banned:
                        bad.append(f'{m} -> {d} ({why})')
    # the core never imports rclpy (only its aha_wam.ros shell does)
    for m, deps in edges.items():
        if m.startswith('aha_wam.') and not m.startswith('aha_wam.ros'):
            bad += [f'{m} -> {d} (the core never imports ROS)' for d in deps
                    if d.split('.')[0] in ROS_TOPS - {'aha_wam_msgs', 'ament_index_python'}]
    return sorted(bad)


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_no_forbidden_edges():
    bad = forbidden_edges(graph())
    assert not bad, 'imports that point the wrong way:\n' + '\n'.join(bad)


@pytest.mark.parametrize('planted,expect', [
    ({'aha_wam.x': {'piper_bringup.piper_sim'}}, 'aha_wam.x -> piper_bringup.piper_sim'),
    ({'piper_core.x': {'rclpy'}}, 'piper_core.x -> rclpy'),
    ({'piper_bringup.x': {'aha_wam.policy'}}, 'piper_bringup.x -> aha_wam.policy'),
])
def test_checker_catches_planted_edges(planted, expect):
    assert any(b.startswith(expect) for b in forbidden_edges(planted))


def test_checker_catches_a_planted_cycle():
    assert find_cycle({'a.x': {'a.y'}, 'a.y': {'a.z'}, 'a.z': {'a.x'}}) == ['a.x', 'a.y', 'a.z', 'a.x']
