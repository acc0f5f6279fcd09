"""Every parameter in a node's YAML is declared by the node, and every declared parameter is in the YAML.

The nodes of the `sim` profile (with the policy) run as real processes; their declared parameters come
from the standard `list_parameters` service, their documented ones from config/*.yaml (node section + /**).
"""
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
import yaml
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import ListParameters, SetParameters

from _support import spawn_python, stop
from aha_wam import system

ROOT = Path(__file__).resolve().parents[2]
IMPLICIT = {'use_sim_time', 'start_type_description_service'}   # declared by rclpy itself


def documented(spec) -> set[str]:
    names = set()
    for path in spec.params_files:
        data = yaml.safe_load((ROOT / path).read_text()) or {}
        for key in ('/**', spec.name, spec.full_name):
            names |= set((data.get(key) or {}).get('ros__parameters', {}))
    return names


def declared(node, executor, spec, timeout=60.0) -> set[str]:
    client = node.create_client(ListParameters, f'{spec.full_name}/list_parameters')
    deadline = time.monotonic() + timeout
    while not client.wait_for_service(timeout_sec=0.5):
        if time.monotonic() > deadline:
            raise TimeoutError(f'{spec.full_name} did not come up')
    future = client.call_async(ListParameters.Request())
    rclpy.spin_until_future_complete(node, future, executor=executor, timeout_sec=20)
    return {n for n in future.result().result.names if not n.startswith('qos_overrides.')}


@pytest.mark.ros
def test_yaml_and_declared_parameters_agree(tiny_checkpoint, tmp_path):
    specs = system.nodes('sim', {'checkpoint': tiny_checkpoint})
    assert {s.name for s in specs} == {'piper_sim', 'trajectory_streamer', 'planner', 'executor', 'policy_manager'}
    context = rclpy.Context()          # private: independent of any other test's rclpy state
    rclpy.init(context=context)
    node = rclpy.create_node('parameter_checker', context=context)
    executor = SingleThreadedExecutor(context=context)
    procs = []
    try:
        procs += [spawn_python('-m', s.module, *s.command_line(str(ROOT), str(tmp_path))) for s in specs]
        for spec, proc in zip(specs, procs):
            try:
                names = declared(node, executor, spec)
            except TimeoutError:
                pytest.fail(f'{spec.name} did not start: {stop(proc)[-2000:]}')
            missing_in_yaml = names - documented(spec) - IMPLICIT
            undeclared = documented(spec) - names - IMPLICIT
            assert not missing_in_yaml, f'{spec.name}: declared but not in its YAML: {sorted(missing_in_yaml)}'
            assert not undeclared, f'{spec.name}: in its YAML but not declared: {sorted(undeclared)}'
        # Declared ranges: rclpy itself refuses an out-of-range value (what `ros2 param set` relies on).
        executor_spec = next(s for s in specs if s.name == 'executor')
        client = node.create_client(SetParameters, f'{executor_spec.full_name}/set_parameters')
        assert client.wait_for_service(timeout_sec=30)
        for name, value in (('control_rate', 500.0), ('denoise_steps', 0), ('limit_tolerance', 0.5)):
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value) if isinstance(value, float) \
                else ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
            future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=pv)]))
            rclpy.spin_until_future_complete(node, future, executor=executor, timeout_sec=20)
            result = future.result().results[0]
            assert not result.successful and ('range' in result.reason or 'bound' in result.reason), (name, result.reason)
    finally:
        for proc in procs:
            stop(proc)
        node.destroy_node()
        rclpy.shutdown(context=context)
