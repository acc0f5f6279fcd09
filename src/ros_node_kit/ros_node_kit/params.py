"""Parameters declared with a description and, where numeric, their range.

A range in the ParameterDescriptor makes rclpy itself refuse out-of-range values, at start-up (`-p`,
YAML) and later (`ros2 param set`), so a node never runs with a value it cannot honour. Conditions a
range cannot express (open intervals, list lengths, cross-parameter rules) stay in the node and raise
`ParameterError`, which `run_node` turns into one line and exit code 2.
"""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


class ParameterError(ValueError):
    """A parameter value is invalid; the node logs it and exits with a clear message."""


def descriptor(description: str, *, read_only: bool = False, value_range: tuple | None = None,
               integer: bool = False) -> ParameterDescriptor:
    """A ParameterDescriptor with `description` and an inclusive [low, high] range (None: unbounded)."""
    d = ParameterDescriptor(description=description, read_only=read_only)
    if value_range is not None:
        low, high = value_range
        if integer:
            d.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=0)]
        else:
            d.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
    return d


def declare(node, name: str, default, description: str, read_only: bool = False,
            value_range: tuple | None = None):
    """Declare a parameter (description, optional inclusive `value_range`) and return its value.

    An override outside the range becomes a `ParameterError` naming the parameter, its value and range.
    """
    integer = isinstance(default, int) and not isinstance(default, bool)
    desc = descriptor(description, read_only=read_only, value_range=value_range, integer=integer)
    try:
        node.declare_parameter(name, default, desc)
    except Exception as exc:  # rclpy's InvalidParameterValueException and friends (names differ by distro)
        raise ParameterError(f'{name}: {exc} (allowed: {value_range}; {description})') from None
    return node.get_parameter(name).value


def declare_table(node, table: dict[str, tuple]) -> dict[str, object]:
    """Declare every `name -> (default, description[, (low, high)])` of `table`; return the values in effect.

    One table per node keeps the YAML files, the README and the node in agreement.
    """
    values = {}
    for name, spec in table.items():
        default, description, *rest = spec
        values[name] = declare(node, name, default, description, value_range=rest[0] if rest else None)
    return values
