"""Declaring documented parameters from one table, so YAML files, docs and nodes agree."""
from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor


def declare(node, table: dict[str, tuple[object, str]]) -> dict[str, object]:
    """Declare every (name -> (default, description)) of `table` on `node`; return the values in effect."""
    values = {}
    for name, (default, description) in table.items():
        node.declare_parameter(name, default, ParameterDescriptor(description=description))
        values[name] = node.get_parameter(name).value
    return values
