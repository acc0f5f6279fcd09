"""Every rclpy / launch / launch_ros API the workspace uses exists on ROS 2 Humble (the deployment target).

Humble's rclpy cannot be installed next to the Kilted wheels, so this is a static check against facts read
from the Humble sources (ros2/rclpy branch humble at b488272b, 3.3.x; ros2/launch and ros2/launch_ros branch
humble; compared with their rolling branches of Dec 2024), kept below as data:

* HUMBLE_NAMES: the public names of each module on Humble (what `from module import name` can import);
* NEWER_MODULES: modules that appeared after Humble, with where Humble keeps the same thing;
* NEWER_ATTRIBUTES / NEWER_KEYWORDS / NEWER_CONTEXT_MANAGERS: methods, properties, keyword arguments and
  `with` forms that exist only after Humble.

An import inside `try:` whose handler catches ImportError (the fallback pattern of ros_node_kit.compat) is
allowed; its `except` branch is checked like any other code. A module of rclpy/launch/launch_ros that is
not in the table fails too: read it in the Humble source and add its names here, so the facts stay checked.

`python tests/foundation/test_humble_api.py` prints the inventory: every module and name the code uses.
"""
from __future__ import annotations

import ast
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ('src', 'launch', 'bench', 'scripts', 'tests')
ROOTS = ('rclpy', 'launch', 'launch_ros')

# Public names per module on Humble (top-level definitions and re-exports; typing helpers left out).
HUMBLE_NAMES = {
    'rclpy': ('Context Executor Future Node Parameter SignalHandlerOptions create_node get_default_context '
              'get_global_executor get_rmw_implementation_identifier init install_signal_handlers ok shutdown spin '
              'spin_once spin_until_future_complete try_shutdown uninstall_signal_handlers'),
    'rclpy.node': ('CallbackGroup Client Clock Context Executor GuardCondition HIDDEN_NODE_PREFIX InvalidHandle '
                   'InvalidParameterTypeException InvalidParameterValueException InvalidTopicNameException MsgType '
                   'MutuallyExclusiveCallbackGroup Node NodeNameNonExistentError NotInitializedException '
                   'PARAMETER_SEPARATOR_STRING Parameter ParameterAlreadyDeclaredException ParameterImmutableException '
                   'ParameterNotDeclaredException ParameterService ParameterUninitializedException Publisher '
                   'PublisherEventCallbacks QoSOverridingOptions QoSProfile ROSClock Rate ReentrantCallbackGroup '
                   'S_TO_NS Service SrvType SrvTypeRequest SrvTypeResponse Subscription SubscriptionEventCallbacks '
                   'TimeSource Timer TopicEndpointInfo Waitable check_is_valid_msg_type check_is_valid_srv_type '
                   'expand_topic_name get_default_context get_logger qos_profile_parameter_events '
                   'qos_profile_services_default validate_full_topic_name validate_namespace validate_node_name '
                   'validate_parameter_name validate_topic_name'),
    'rclpy.executors': ('Client Clock ClockType ConditionReachedException Context Executor ExternalShutdownException '
                        'Future GuardCondition InvalidHandle MultiThreadedExecutor Node NumberOfEntities Service '
                        'ShutdownException SignalHandlerGuardCondition SingleThreadedExecutor Subscription Task '
                        'TimeoutException TimeoutObject Timer Waitable WaitableEntityType await_or_execute '
                        'get_default_context timeout_sec_to_nsec'),
    'rclpy.qos': ('DurabilityPolicy Duration HistoryPolicy InvalidQoSProfileException LivelinessPolicy '
                  'QoSCompatibility QoSDurabilityPolicy QoSHistoryPolicy QoSLivelinessPolicy QoSPolicyEnum '
                  'QoSPolicyKind QoSPresetProfiles QoSProfile QoSReliabilityPolicy ReliabilityPolicy '
                  'qos_check_compatible qos_policy_name_from_kind qos_profile_action_status_default '
                  'qos_profile_parameter_events qos_profile_parameters qos_profile_sensor_data '
                  'qos_profile_services_default qos_profile_system_default qos_profile_unknown'),
    'rclpy.qos_event': ('CallbackGroup NumberOfEntities PublisherEventCallbacks QoSEventHandler '
                        'QoSLivelinessChangedInfo QoSLivelinessLostInfo QoSMessageLostInfo '
                        'QoSOfferedDeadlineMissedInfo QoSOfferedIncompatibleQoSInfo QoSPublisherEventType '
                        'QoSRequestedDeadlineMissedInfo QoSRequestedIncompatibleQoSInfo QoSSubscriptionEventType '
                        'SubscriptionEventCallbacks UnsupportedEventTypeError Waitable get_logger '
                        'qos_policy_name_from_kind rclpy'),
    'rclpy.serialization': 'check_for_type_support deserialize_message serialize_message',
    'rclpy.parameter': 'PARAMETER_SEPARATOR_STRING Parameter parameter_value_to_python',
    'rclpy.signals': ('GuardCondition InvalidHandle SignalHandlerGuardCondition SignalHandlerOptions '
                      'get_current_signal_handlers_options install_signal_handlers uninstall_signal_handlers'),
    'rclpy.lifecycle': ('LifecycleNode LifecycleNodeMixin LifecyclePublisher LifecycleState ManagedEntity Node '
                        'NodeMixin Publisher SimpleManagedEntity State TransitionCallbackReturn'),
    'rclpy.time': 'CONVERSION_CONSTANT Duration Time',
    'rclpy.duration': 'Duration Infinite S_TO_NS',
    'rclpy.clock': ('Clock ClockChange ClockType Duration JumpHandle JumpThreshold NotInitializedException ROSClock '
                    'Time TimeJump get_default_context'),
    'rclpy.callback_groups': 'CallbackGroup MutuallyExclusiveCallbackGroup ReentrantCallbackGroup',
    'rclpy.task': 'Future Task',
    'rclpy.client': 'CallbackGroup Client Context Future QoSProfile SrvType SrvTypeRequest SrvTypeResponse',
    'rclpy.service': 'CallbackGroup QoSProfile Service SrvType SrvTypeRequest SrvTypeResponse',
    'rclpy.subscription': 'CallbackGroup MsgType QoSEventHandler QoSProfile Subscription SubscriptionEventCallbacks',
    'rclpy.publisher': 'CallbackGroup Duration MsgType Publisher PublisherEventCallbacks QoSEventHandler QoSProfile',
    'rclpy.timer': 'InvalidHandle ROSInterruptException Rate Timer get_default_context',
    'rclpy.exceptions': ('InvalidHandle InvalidNamespaceException InvalidNodeNameException InvalidParameterException '
                         'InvalidParameterTypeException InvalidParameterValueException InvalidServiceNameException '
                         'InvalidTopicNameException NameValidationException NoTypeSupportImportedException '
                         'NotInitializedException ParameterAlreadyDeclaredException ParameterException '
                         'ParameterImmutableException ParameterNotDeclaredException ParameterUninitializedException '
                         'ROSInterruptException'),
    'rclpy.logging': ('LoggingSeverity clear_config get_logger get_logger_effective_level get_logging_directory '
                      'get_logging_severity_from_string initialize rclpy set_logger_level shutdown'),
    'rclpy.context': 'Context g_logging_configure_lock g_logging_ref_count',
    'rclpy.utilities': ('Context S_TO_NS g_context_lock g_default_context get_available_rmw_implementations '
                        'get_default_context get_rmw_implementation_identifier ok remove_ros_args shutdown '
                        'timeout_sec_to_nsec try_shutdown'),
    'rclpy.time_source': ('CLOCK_TOPIC ClockType Parameter QoSProfile ROSClock ReliabilityPolicy Time TimeSource '
                          'USE_SIM_TIME_NAME'),
    'rclpy.wait_for_message': 'Node QoSProfile SignalHandlerGuardCondition timeout_sec_to_nsec wait_for_message',
    'rclpy.type_support': ('NoTypeSupportImportedException check_for_type_support check_is_valid_msg_type '
                           'check_is_valid_srv_type'),
    'launch': ('Action Condition Event EventHandler InvalidLaunchFileError LaunchContext LaunchDescription '
               'LaunchDescriptionEntity LaunchDescriptionSource LaunchIntrospector LaunchService SomeActionsType '
               'SomeActionsType_types_tuple SomeSubstitutionsType SomeSubstitutionsType_types_tuple Substitution '
               'actions conditions descriptions events frontend logging substitutions'),
    'launch.actions': ('AppendEnvironmentVariable DeclareLaunchArgument EmitEvent ExecuteLocal ExecuteProcess '
                       'GroupAction IncludeLaunchDescription LogInfo OpaqueCoroutine OpaqueFunction PopEnvironment '
                       'PopLaunchConfigurations PushEnvironment PushLaunchConfigurations RegisterEventHandler '
                       'ResetEnvironment ResetLaunchConfigurations SetEnvironmentVariable SetLaunchConfiguration '
                       'Shutdown TimerAction UnregisterEventHandler UnsetEnvironmentVariable UnsetLaunchConfiguration'),
    'launch.substitutions': ('AndSubstitution AnonName Command EnvironmentVariable FindExecutable LaunchConfiguration '
                             'LocalSubstitution NotSubstitution OrSubstitution PathJoinSubstitution PythonExpression '
                             'SubstitutionFailure TextSubstitution ThisLaunchFile ThisLaunchFileDir'),
    'launch.event_handlers': ('OnExecutionComplete OnIncludeLaunchDescription OnProcessExit OnProcessIO OnProcessStart '
                              'OnShutdown event_named'),
    'launch.events': 'ExecutionComplete IncludeLaunchDescription Shutdown TimerEvent matches_action process',
    'launch.conditions': ('IfCondition InvalidConditionExpressionError LaunchConfigurationEquals '
                          'LaunchConfigurationNotEquals UnlessCondition evaluate_condition_expression'),
    'launch.launch_description_sources': ('AnyLaunchDescriptionSource FrontendLaunchDescriptionSource '
                                          'InvalidFrontendLaunchFileError InvalidLaunchFileError '
                                          'InvalidPythonLaunchFileError PythonLaunchDescriptionSource '
                                          'get_launch_description_from_any_launch_file '
                                          'get_launch_description_from_frontend_launch_file '
                                          'get_launch_description_from_python_launch_file '
                                          'load_python_launch_file_as_module'),
    'launch_ros': 'actions descriptions event_handlers events ros_adapters substitutions',
    'launch_ros.actions': ('ComposableNodeContainer LifecycleNode LoadComposableNodes Node PushRosNamespace RosTimer '
                           'SetParameter SetParametersFromFile SetRemap SetUseSimTime'),
    'launch_ros.substitutions': 'ExecutableInPackage FindPackage FindPackagePrefix FindPackageShare Parameter',
    'launch_ros.event_handlers': 'OnStateTransition',
    'launch_ros.events.lifecycle': 'ChangeState StateTransition matches_node_name',
    'launch_ros.descriptions': 'ComposableNode Parameter ParameterFile ParameterValue',
    'launch_ros.parameter_descriptions': ('AllowedTypesType EvaluatedParameterValue FilePath LaunchContext Parameter '
                                          'ParameterFile ParameterValue SomeSubstitutionsType '
                                          'SomeSubstitutionsType_types_tuple SomeValueType Substitution '
                                          'SubstitutionFailure ensure_argument_type normalize_to_list_of_substitutions '
                                          'normalize_typed_substitution parse_substitution perform_substitutions '
                                          'perform_typed_substitution'),
}
HUMBLE_API = {module: frozenset(names.split()) for module, names in HUMBLE_NAMES.items()}

# Modules that do not exist on Humble -> where Humble has the same thing (or that it has none).
NEWER_MODULES = {
    'rclpy.event_handler': 'Iron+ (rclpy 4.0); Humble has these classes in rclpy.qos_event: '
                           'import them from ros_node_kit.compat',
    'rclpy.clock_type': 'Iron+; Humble has ClockType in rclpy.clock',
    'rclpy.experimental': 'Iron+ (EventsExecutor); Humble has no events executor',
    'rclpy.logging_service': 'Iron+; no logger service on Humble',
    'rclpy.parameter_client': 'Iron+; on Humble call the rcl_interfaces parameter services directly',
    'rclpy.parameter_event_handler': 'Iron+; on Humble subscribe to /parameter_events',
    'rclpy.service_introspection': 'Iron+; no service introspection on Humble',
    'rclpy.type_description_service': 'Iron+',
    'rclpy.type_hash': 'Iron+',
    'launch_ros.actions.lifecycle_transition': 'Iron+ (LifecycleTransition); on Humble emit '
                                               'launch_ros.events.lifecycle.ChangeState',
    'launch_ros.actions.set_ros_log_dir': 'Iron+',
    'launch.substitutions.equals_substitution': 'Iron+',
    'launch.substitutions.not_equals_substitution': 'Iron+',
    'launch.substitutions.if_else_substitution': 'Iron+',
    'launch.substitutions.file_content': 'Jazzy+',
    'launch.substitutions.launch_log_dir': 'Jazzy+',
}
# Modules that exist on Humble but warn (deprecated shims) on newer distros: import through the compat layer.
MOVED_AFTER_HUMBLE = {
    'rclpy.qos_event': 'deprecated after Humble (a warning on Kilted): import from ros_node_kit.compat',
}
COMPAT_FILES = {'src/ros_node_kit/ros_node_kit/compat.py'}   # the one home of the fallbacks
# Methods and properties that exist only after Humble (Node, Client, Service, Subscription, executors).
NEWER_ATTRIBUTES = {
    'count_clients': 'Node.count_clients is Iron+',
    'count_services': 'Node.count_services is Iron+',
    'wait_for_node': 'Node.wait_for_node is Iron+',
    'get_fully_qualified_node_names': 'Node.get_fully_qualified_node_names is Iron+',
    'list_parameters': 'Node.list_parameters is Iron+ (Humble: the ~/list_parameters service)',
    'add_pre_set_parameters_callback': 'Iron+ (Humble: add_on_set_parameters_callback)',
    'add_post_set_parameters_callback': 'Iron+ (Humble: add_on_set_parameters_callback)',
    'remove_pre_set_parameters_callback': 'Iron+',
    'remove_post_set_parameters_callback': 'Iron+',
    'configure_introspection': 'Client/Service.configure_introspection is Iron+',
    'get_publisher_count': 'Subscription.get_publisher_count is Jazzy+ (Humble: node.count_publishers(topic))',
    'service_name': 'Client/Service.service_name is Jazzy+ (Humble: srv_name)',
}
# Keyword arguments that exist only after Humble, by the name of the callable they are passed to.
NEWER_KEYWORDS = {
    'create_timer': {'autostart': 'Jazzy+'},
    'Timer': {'autostart': 'Jazzy+'},
    'Node': {'enable_logger_service': 'Iron+'},
    'LifecycleNode': {'enable_logger_service': 'Iron+'},
    'call': {'timeout_sec': 'Client.call(timeout_sec=) is Jazzy+'},
    'shutdown': {'wait_for_threads': 'MultiThreadedExecutor.shutdown(wait_for_threads=) is Jazzy+'},
    'ExecuteProcess': {'respawn_max_retries': 'Jazzy+'},
    'log': {'name': 'RcutilsLogger.log(name=) is Jazzy+'},
}
# Calls whose result is not a context manager on Humble (`with rclpy.init():` is Jazzy+, like `with node:`).
NEWER_CONTEXT_MANAGERS = {'init', 'create_node', 'Node', 'LifecycleNode', 'SingleThreadedExecutor',
                          'MultiThreadedExecutor', 'Executor', 'Context'}

# The lifecycle API on Humble (rclpy/lifecycle at humble): the same class and callback names as on Kilted.
HUMBLE_LIFECYCLE_METHODS = frozenset(
    'trigger_configure trigger_cleanup trigger_shutdown trigger_activate trigger_deactivate add_managed_entity '
    'on_configure on_cleanup on_shutdown on_activate on_deactivate on_error create_lifecycle_publisher '
    'destroy_lifecycle_publisher'.split())


def _guarded(parents: list[ast.AST], node: ast.AST) -> bool:
    """True when `node` sits in the body of a `try` that catches ImportError (a fallback import)."""
    child = node
    for parent in reversed(parents):
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                caught = handler.type
                names = ([caught] if not isinstance(caught, ast.Tuple) else list(caught.elts)) if caught else []
                if caught is None or any(isinstance(n, ast.Name) and n.id in
                                         ('ImportError', 'ModuleNotFoundError', 'Exception') for n in names):
                    return True
        child = parent
    return False


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ''


class HumbleChecker(ast.NodeVisitor):
    """Collects (line, problem) for one file and the inventory of modules/names it uses."""

    def __init__(self, filename: str = '<string>'):
        self.compat = filename in COMPAT_FILES
        self.problems: list[tuple[int, str]] = []
        self.used: dict[str, set[str]] = defaultdict(set)
        self.aliases: dict[str, str] = {}      # local name -> module it refers to
        self._parents: list[ast.AST] = []

    def generic_visit(self, node):
        self._parents.append(node)
        super().generic_visit(node)
        self._parents.pop()

    def _problem(self, node, text):
        self.problems.append((getattr(node, 'lineno', 0), text))

    def _check_module(self, node, module: str, guarded: bool) -> bool:
        self.used[module]
        if guarded:
            return False
        if module in NEWER_MODULES:
            self._problem(node, f'module {module} does not exist on Humble: {NEWER_MODULES[module]}')
            return False
        if module in MOVED_AFTER_HUMBLE and not self.compat:
            self._problem(node, f'module {module}: {MOVED_AFTER_HUMBLE[module]}')
            return False
        if module not in HUMBLE_API:
            self._problem(node, f'module {module} is not in the Humble facts of this test: check it in the '
                                f'Humble sources and add it to HUMBLE_NAMES')
            return False
        return True

    def visit_Import(self, node):
        guarded = _guarded(self._parents, node)
        for alias in node.names:
            if alias.name.split('.')[0] in ROOTS:
                self._check_module(node, alias.name, guarded)
                if alias.asname:            # import rclpy.node as rn -> rn is rclpy.node
                    self.aliases[alias.asname] = alias.name
                else:                       # import rclpy.node -> the name bound is rclpy
                    self.aliases[alias.name.split('.')[0]] = alias.name.split('.')[0]
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ''
        if node.level == 0 and module.split('.')[0] in ROOTS:
            guarded = _guarded(self._parents, node)
            known = self._check_module(node, module, guarded)
            for alias in node.names:
                sub = f'{module}.{alias.name}'
                self.used[module].add(alias.name)
                if sub in HUMBLE_API or sub in NEWER_MODULES:
                    self._check_module(node, sub, guarded)
                    self.aliases[alias.asname or alias.name] = sub
                elif known and alias.name != '*' and alias.name not in HUMBLE_API[module]:
                    self._problem(node, f'{module} has no {alias.name} on Humble')
        self.generic_visit(node)

    def visit_Attribute(self, node):
        if node.attr in NEWER_ATTRIBUTES and isinstance(node.ctx, ast.Load):
            self._problem(node, f'.{node.attr}: {NEWER_ATTRIBUTES[node.attr]}')
        # module attribute chains: rclpy.signals.SignalHandlerOptions, launch.actions.Shutdown, ...
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in self.aliases and not isinstance(self._parents[-1], ast.Attribute):
            module = self.aliases[base.id]
            for attr in reversed(chain):
                if f'{module}.{attr}' in HUMBLE_API:
                    module = f'{module}.{attr}'
                    self.used[module]
                    continue
                if f'{module}.{attr}' in NEWER_MODULES:
                    self._problem(node, f'module {module}.{attr} does not exist on Humble: '
                                        f'{NEWER_MODULES[module + "." + attr]}')
                elif module in HUMBLE_API and attr not in HUMBLE_API[module]:
                    self._problem(node, f'{module} has no {attr} on Humble')
                else:
                    self.used[module].add(attr)
                break
        self.generic_visit(node)

    def visit_Call(self, node):
        newer = NEWER_KEYWORDS.get(_callee(node), {})
        for kw in node.keywords:
            if kw.arg in newer:
                self._problem(node, f'{_callee(node)}({kw.arg}=...): {newer[kw.arg]}')
        self.generic_visit(node)

    def visit_With(self, node):
        for item in node.items:
            expr = item.context_expr
            if isinstance(expr, ast.Call) and _callee(expr) in NEWER_CONTEXT_MANAGERS:
                self._problem(node, f'`with {_callee(expr)}(...)`: rclpy objects are context managers only '
                                    f'from Jazzy on; use try/finally')
        self.generic_visit(node)


def check_source(source: str, filename: str = '<string>') -> tuple[list[str], dict[str, set[str]]]:
    """Problems ('file:line: text') and the inventory {module: names} of one Python source."""
    checker = HumbleChecker(filename)
    checker.visit(ast.parse(source, filename=filename))
    return [f'{filename}:{line}: {text}' for line, text in sorted(checker.problems)], checker.used


def scanned_files() -> list[Path]:
    files = []
    for top in SCANNED:
        files += [p for p in (ROOT / top).rglob('*.py') if '__pycache__' not in p.parts]
    return sorted(files)


def check_workspace() -> tuple[list[str], dict[str, set[str]]]:
    problems, used = [], defaultdict(set)
    for path in scanned_files():
        found, names = check_source(path.read_text(encoding='utf-8'), str(path.relative_to(ROOT)))
        problems += found
        for module, n in names.items():
            used[module] |= n
    return problems, used


# ------------------------------------------------------------------------------------------------ tests
def test_workspace_uses_only_humble_api():
    problems, used = check_workspace()
    assert not problems, 'API missing on ROS 2 Humble:\n' + '\n'.join(problems)
    # the scan really saw the code (not an empty tree): the node style and the launch glue
    assert 'SingleThreadedExecutor' in used['rclpy.executors'] and 'Node' in used['launch_ros.actions']


@pytest.mark.parametrize('planted, expected', [
    ('from rclpy.event_handler import SubscriptionEventCallbacks\n', 'module rclpy.event_handler does not exist'),
    ('import rclpy.event_handler\n', 'module rclpy.event_handler does not exist'),
    ('import rclpy\nh = rclpy.event_handler.SubscriptionEventCallbacks()\n', 'rclpy.event_handler does not exist'),
    ('from rclpy.qos_event import SubscriptionEventCallbacks\n', 'import from ros_node_kit.compat'),
    ('from rclpy.clock_type import ClockType\n', 'Humble has ClockType in rclpy.clock'),
    ('from rclpy.time import ClockType\n', 'rclpy.time has no ClockType on Humble'),
    ('from launch_ros.actions import LifecycleTransition\n', 'launch_ros.actions has no LifecycleTransition'),
    ('from launch_ros.actions import PushROSNamespace\n', 'no PushROSNamespace'),
    ('import rclpy\nrclpy.signals.NoSuchThing\n', 'rclpy.signals has no NoSuchThing'),
    ('def f(node):\n    node.create_timer(0.1, print, autostart=False)\n', 'create_timer(autostart=...)'),
    ('def f(sub):\n    return sub.get_publisher_count()\n', 'get_publisher_count is Jazzy+'),
    ('import rclpy\nwith rclpy.init():\n    pass\n', '`with init(...)`'),
    ('from rclpy.impl.rcutils_logger import RcutilsLogger\n', 'not in the Humble facts'),
])
def test_checker_catches_api_humble_lacks(planted, expected):
    problems, _ = check_source(planted, 'planted.py')
    assert len(problems) == 1 and expected in problems[0], problems


def test_checker_accepts_the_fallback_and_humble_api():
    source = '''
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from launch_ros.actions import LifecycleNode as LaunchLifecycleNode, Node
from launch_ros.events.lifecycle import ChangeState
try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks  # noqa
try:
    from rclpy.experimental import EventsExecutor
except Exception:
    EventsExecutor = None
rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
'''
    problems, used = check_source(source, 'fallback.py')
    # the one problem is the moved module in the except branch: only ros_node_kit.compat may do that
    assert problems == ['fallback.py:10: module rclpy.qos_event: deprecated after Humble (a warning on Kilted): '
                        'import from ros_node_kit.compat'], problems
    assert {'LifecycleNode', 'TransitionCallbackReturn'} <= used['rclpy.lifecycle']
    assert 'SignalHandlerOptions' in used['rclpy.signals']


def test_compat_is_the_one_home_of_moved_imports():
    """ros_node_kit.compat holds the fallbacks; everything else imports from it (the checker flags the rest)."""
    (compat,) = COMPAT_FILES
    problems, used = check_source((ROOT / compat).read_text(), compat)
    assert not problems and 'SubscriptionEventCallbacks' in used['rclpy.event_handler'], problems
    from_anywhere_else, _ = check_source((ROOT / compat).read_text(), 'elsewhere.py')
    assert len(from_anywhere_else) == 1 and 'ros_node_kit.compat' in from_anywhere_else[0]


def test_lifecycle_api_on_humble_matches_what_nodes_use():
    """rclpy.lifecycle exists on Humble with the same names; a managed node may use these methods."""
    assert {'LifecycleNode', 'LifecycleState', 'TransitionCallbackReturn', 'LifecyclePublisher'} <= \
        HUMBLE_API['rclpy.lifecycle']
    used_methods = set()
    for pkg in ('aha_wam_planner', 'aha_wam_executor'):
        for path in (ROOT / 'src' / pkg).rglob('*.py'):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.Attribute)):
                    name = node.name if isinstance(node, ast.FunctionDef) else node.attr
                    if name.startswith(('trigger_', 'on_', 'create_lifecycle', 'destroy_lifecycle')):
                        used_methods.add(name)
    lifecycle_like = {m for m in used_methods if m.startswith(('trigger_', 'create_lifecycle', 'destroy_lifecycle'))
                      or m in ('on_configure', 'on_cleanup', 'on_shutdown', 'on_activate', 'on_deactivate', 'on_error')}
    assert lifecycle_like <= HUMBLE_LIFECYCLE_METHODS, lifecycle_like - HUMBLE_LIFECYCLE_METHODS


if __name__ == '__main__':   # the inventory, for the notes
    problems, used = check_workspace()
    print(json.dumps({'problems': problems, 'used': {m: sorted(n) for m, n in sorted(used.items())}}, indent=1))
    sys.exit(1 if problems else 0)
