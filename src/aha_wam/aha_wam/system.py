"""The node set of every profile: the one description that both the launch files and `aha-wam up` start.

    profile  what runs
    -------  -----------------------------------------------------------------------------------------
    sim      MuJoCo bimanual Piper with the piper_ros interface + trajectory streamer
             + planner and executor when `checkpoint:=<dir>` is given
    real     AgileX piper_single_ctrl on two CAN ports (namespaces left/, right/, log level warn) + trajectory
             streamer + the ego camera (`camera:=realsense|usb_cam|none`, remapped to /camera/ego/image_raw)
             + planner and executor when `checkpoint:=<dir>` is given
    replay   a recorded bag played with /clock (bag_player) + planner and executor on sim time: the real
             nodes on recorded data (the ROS-free `aha-wam eval-bag` computes the metrics)

`launch/*.launch.py` turn `nodes(profile, args)` into launch_ros Node actions; `aha-wam up` starts the same
specs as `python -m <module> --ros-args ...` processes where `ros2 launch` is unavailable. Keeping both on
this one list is what stops them from drifting apart. ROS-free: nothing here imports rclpy or launch.

Both check every package a profile needs before starting any node (`check_packages`): a launch that failed
half-way would leave the nodes it had started running (ros2/launch#747), real arm drivers included.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Mapping


@dataclasses.dataclass(frozen=True)
class Argument:
    """A launch argument (also accepted as `key:=value` by `aha-wam up`)."""

    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node process: what `ros2 run` / launch_ros Node / `python -m` need to start it."""

    package: str
    executable: str                      # console script in lib/<package> (`ros2 run package executable`)
    name: str                            # node name
    module: str | None                   # `python -m module` entry; None = only startable by a full ROS install
    namespace: str = ''
    params_files: tuple[str, ...] = ()   # YAML files, relative to share/aha_wam
    parameters: Mapping[str, object] = dataclasses.field(default_factory=dict)  # overrides after the files
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()      # command-line arguments before --ros-args
    ros_arguments: tuple[str, ...] = ()  # after --ros-args, e.g. ('--log-level', 'warn')
    required: bool = True                # if it exits, the whole system is stopped

    @property
    def full_name(self) -> str:
        """/namespace/name, the key that selects this node in a parameter file."""
        return '/' + '/'.join(part for part in (self.namespace.strip('/'), self.name) if part)

    def overrides_yaml(self) -> str:
        """`parameters` as a params file keyed by this node's full name.

        Why a file and not `-p`: rcl applies node-specific sections of the params files AFTER `-p` (which
        counts as `/**`), so `-p` cannot override a value the node's YAML section sets; a later file with
        the node's own key can. launch_ros dict parameters have the same problem, hence the same file.
        """
        import yaml
        return yaml.safe_dump({self.full_name: {'ros__parameters': dict(self.parameters)}}, sort_keys=False)

    def write_overrides(self, directory: str) -> str:
        """Write overrides_yaml() into `directory`; returns its path."""
        path = os.path.join(directory, f'{self.full_name.strip("/").replace("/", "__")}.overrides.yaml')
        with open(path, 'w') as f:
            f.write(self.overrides_yaml())
        return path

    def command_line(self, share_dir: str, overrides_dir: str | None = None) -> list[str]:
        """Arguments after the executable: own arguments (`{share}` = share_dir), then `--ros-args` with name,
        namespace, the parameter files, the overrides file (written into `overrides_dir`) and remaps."""
        args = [a.replace('{share}', share_dir) for a in self.arguments]
        args += ['--ros-args', *self.ros_arguments, '-r', f'__node:={self.name}']
        if self.namespace:
            args += ['-r', f'__ns:=/{self.namespace.strip("/")}']
        for path in self.params_files:
            args += ['--params-file', os.path.join(share_dir, path)]
        if self.parameters:
            if overrides_dir is None:
                raise ValueError(f'{self.name}: parameters need an overrides_dir to write their params file')
            args += ['--params-file', self.write_overrides(overrides_dir)]
        for src, dst in self.remappings:
            args += ['-r', f'{src}:={dst}']
        return args


# The tasks a policy knows, in the order of its task-id table (aha_wam.data.episode.TASKS).
TASKS = ('lift_box', 'handover_cube', 'place_cube_in_bowl')
BACKENDS = ('torch', 'torch_compile', 'cudagraph', 'onnxruntime', 'tensorrt')
CAMERAS = ('realsense', 'usb_cam', 'none')
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
EGO_IMAGE, EGO_INFO = '/camera/ego/image_raw', '/camera/ego/camera_info'


def _policy_arguments(device: str, backend: str) -> tuple[Argument, ...]:
    return (
        Argument('checkpoint', '', 'policy checkpoint directory; empty = bring up the arms without the policy'),
        Argument('task', 'lift_box', 'task to perform (sim: also the simulated scene)', TASKS),
        Argument('transport', 'shm', 'planner context transport', ('shm', 'cuda_ipc', 'inline')),
        Argument('device', device, "torch device of planner and executor ('cpu', 'cuda', 'cuda:N')"),
        Argument('backend', backend, 'executor inference backend (onnxruntime also moves the planner prefill '
                                     'to onnxruntime)', BACKENDS),
        Argument('denoise_steps', '10', 'executor Euler steps per chunk'),
        Argument('camera_topics', '', "comma-separated image topics of the checkpoint's camera views, in its "
                                      "contract's order ('' = the contract's own, ours /camera/ego/image_raw)"),
        Argument('rviz', 'false', 'start rviz2 + robot_state_publisher (full ROS install)', ('true', 'false')),
    )

ARGUMENTS: dict[str, tuple[Argument, ...]] = {
    # The simulator profile is what CPU-only machines run: onnxruntime is 3-4x faster there than eager torch.
    'sim': _policy_arguments('cpu', 'onnxruntime') + (
        Argument('level', 'clean', 'scene randomisation level', ('clean', 'randomized')),
        Argument('seed', '0', 'seed of the first episode'),
        Argument('use_sim_time', 'false', 'run every node on the simulator /clock', ('true', 'false')),
        Argument('camera_rate', '30.0', 'ego camera rate, Hz (a real ego camera runs at 30 Hz; the image age '
                                        'at each update is part of the image-to-trajectory latency)'),
        Argument('left_ns', 'left', 'namespace of the left arm'),
        Argument('right_ns', 'right', 'namespace of the right arm'),
    ),
    'real': _policy_arguments('cuda', 'torch') + (
        Argument('can_left_port', 'can_left', 'SocketCAN interface of the left arm (1 Mbit/s, up)'),
        Argument('can_right_port', 'can_right', 'SocketCAN interface of the right arm (1 Mbit/s, up)'),
        Argument('camera', 'realsense', 'ego camera driver, remapped to /camera/ego/image_raw (rgb8 or bgr8); '
                                        "'none' = another process publishes it", CAMERAS),
        Argument('camera_device', '/dev/video0', 'V4L2 device of camera:=usb_cam'),
        Argument('driver_log_level', 'warn', 'log level of the AgileX drivers (at info they log every command: '
                                             '~3000 lines/s for two arms at 200 Hz)', LOG_LEVELS),
        Argument('joint_name_map', 'auto', "how the drivers' joint names map onto joint1..joint6, gripper: auto "
                                           "(ours or the older joint0..joint6), identity, piper_ros_legacy, or "
                                           "'received:expected,...' (piper_core.joint_names)"),
        Argument('left_ns', 'left', 'namespace of the left arm'),
        Argument('right_ns', 'right', 'namespace of the right arm'),
    ),
    'replay': _policy_arguments('cpu', 'onnxruntime') + (
        Argument('bag', '', 'bag directory or file to play (MCAP or sqlite3); required'),
        Argument('rate', '1.0', 'playback rate factor'),
        Argument('start_paused', 'false', 'wait for ~/resume before playing', ('true', 'false')),
        Argument('topic_map', '', "topic map of the bag ('' = ours, 'agilex', or a YAML path)"),
        Argument('left_ns', 'left', 'namespace of the left arm'),
        Argument('right_ns', 'right', 'namespace of the right arm'),
    ),
}
PROFILES = tuple(ARGUMENTS)

# Where to get each package a profile may need but this workspace does not build (one line in the error).
PACKAGE_SOURCES = {
    'piper': 'it is AgileX piper_ros, branch humble (https://github.com/agilexrobotics/piper_ros; docker/Dockerfile '
             'pins a commit): clone it into a workspace, `colcon build --packages-up-to piper`, source its install/',
    'realsense2_camera': '`apt install ros-humble-realsense2-camera`, or choose camera:=usb_cam|none',
    'usb_cam': '`apt install ros-humble-usb-cam`, or choose camera:=realsense|none',
    'rviz2': '`apt install ros-humble-rviz2` (or ros-humble-desktop), or leave rviz:=false',
    'robot_state_publisher': '`apt install ros-humble-robot-state-publisher`, or leave rviz:=false',
}
WORKSPACE_SOURCE = 'it is part of this workspace: build it (make setup, or colcon build) and source install/setup.bash'


class MissingPackage(ValueError):
    """A package (or its executable) that a profile needs is not installed: one line naming it and its source."""


def package_prefix(package: str, prefixes: str | None = None) -> str | None:
    """The install prefix of `package` in the ament index (AMENT_PREFIX_PATH), like
    ament_index_python.get_package_prefix, without importing ROS; None when it is not installed."""
    for prefix in (os.environ.get('AMENT_PREFIX_PATH', '') if prefixes is None else prefixes).split(os.pathsep):
        if prefix and os.path.isfile(os.path.join(prefix, 'share', 'ament_index', 'resource_index', 'packages',
                                                  package)):
            return prefix
    return None


def check_packages(specs, prefixes: str | None = None) -> None:
    """Raise MissingPackage unless every spec's package and executable are installed (call before starting any)."""
    needed: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        needed.setdefault((spec.package, spec.executable), []).append(spec.full_name)
    problems = []
    for (package, executable), names in needed.items():
        prefix = package_prefix(package, prefixes)
        where = PACKAGE_SOURCES.get(package, WORKSPACE_SOURCE)
        if prefix is None:
            problems.append(f"package '{package}' is not installed (needed by {', '.join(names)}): {where}")
        elif not os.access(os.path.join(prefix, 'lib', package, executable), os.X_OK):
            problems.append(f"package '{package}' at {prefix} has no executable '{executable}' (needed by "
                            f"{', '.join(names)}): {where}")
    if problems:
        raise MissingPackage('; '.join(problems))


DDS_PROFILE = 'config/dds/fastdds_discovery.xml'     # relative to share/aha_wam
DDS_PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')   # Fast DDS 3 / 2.x
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')      # read FASTRTPS_...; Kilted's Fast DDS 3 deprecates that name


def node_environment(share_dir: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment variables the node processes get on top of the caller's: the project's Fast DDS participant
    profile (faster discovery under start-up load, see the XML) when the RMW is Fast DDS (the default) and
    the user has not chosen a profile file of their own. Empty otherwise. One variable only: rmw_fastrtps on
    Fast DDS 3 reads both names and would load the profile twice (an XML error)."""
    environ = os.environ if environ is None else environ
    rmw = environ.get('RMW_IMPLEMENTATION', '') or 'rmw_fastrtps_cpp'
    if not rmw.startswith('rmw_fastrtps') or any(environ.get(v) for v in DDS_PROFILE_VARIABLES):
        return {}
    path = os.path.join(share_dir, DDS_PROFILE)
    variable = DDS_PROFILE_VARIABLES[1 if environ.get('ROS_DISTRO', '') in FAST_DDS_2_DISTROS else 0]
    return {variable: path} if os.path.isfile(path) else {}


def resolve_arguments(profile: str, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Defaults of `profile` updated with `given`; unknown names or values outside `choices` raise."""
    if profile not in ARGUMENTS:
        raise ValueError(f'unknown profile {profile!r}; known profiles: {", ".join(PROFILES)}')
    declared = {a.name: a for a in ARGUMENTS[profile]}
    unknown = sorted(set(given or {}) - set(declared))
    if unknown:
        raise ValueError(f'profile {profile!r} has no argument(s) {", ".join(unknown)}; '
                         f'known: {", ".join(declared)}')
    values = {name: a.default for name, a in declared.items()}
    values.update(given or {})
    for name, value in values.items():
        if declared[name].choices and value not in declared[name].choices:
            raise ValueError(f'{name}:={value!r} is not one of {", ".join(declared[name].choices)}')
    return values


def _arms(args: Mapping[str, str]) -> list[str]:
    return [args['left_ns'].strip('/'), args['right_ns'].strip('/')]


def _streamer(args: Mapping[str, str], use_sim_time: bool) -> NodeSpec:
    return NodeSpec(
        package='piper_bringup', executable='trajectory_streamer', name='trajectory_streamer',
        module='piper_bringup.trajectory_streamer',
        params_files=('config/piper/trajectory_streamer.yaml',),
        parameters={'arms': _arms(args), 'use_sim_time': use_sim_time})


def _policy_nodes(args: Mapping[str, str], use_sim_time: bool) -> list[NodeSpec]:
    """Planner and executor, when a checkpoint is given."""
    if not args['checkpoint']:
        return []
    # The task travels by name: each node maps it through the checkpoint's own task table.
    common = {'checkpoint': args['checkpoint'], 'device': args['device'], 'use_sim_time': use_sim_time,
              'task': args['task'], 'camera_topics': [t.strip() for t in args['camera_topics'].split(',')]}
    # planner and executor are managed nodes: policy_manager configures them (load, cached artefacts, warm-up),
    # starts the episode in the simulator once both are ready, then activates them.
    manager = NodeSpec(package='aha_wam', executable='policy_manager', name='policy_manager',
                       module='aha_wam.ros.policy_manager', params_files=('config/policy_manager.yaml',),
                       parameters={'start_episode': 'seed' in args,    # only the sim profile has episodes to start
                                   'use_sim_time': use_sim_time})
    return [
        NodeSpec(package='aha_wam_planner', executable='planner_node', name='planner',
                 module='aha_wam_planner.planner_node', params_files=('config/planner.yaml',),
                 parameters={**common, 'transport': args['transport'],
                             'backend': 'onnxruntime' if args['backend'] == 'onnxruntime' else 'torch'}),
        NodeSpec(package='aha_wam_executor', executable='executor_node', name='executor',
                 module='aha_wam_executor.executor_node', params_files=('config/executor.yaml',),
                 parameters={**common, 'arms': _arms(args), 'denoise_steps': int(args['denoise_steps']),
                             'backend': args['backend'],
                             # inline contexts trust the whole DDS domain: accepted only when the planner sends them
                             'accept_inline_context': args['transport'] == 'inline'}),
        manager,
    ]


def _camera_nodes(args: Mapping[str, str]) -> list[NodeSpec]:
    """The ego camera driver, node /camera/ego, its colour stream remapped to /camera/ego/image_raw.

    Not required: a camera that dies must not take the arm drivers down; the policy holds on a stale image."""
    if args['camera'] == 'realsense':   # realsense2_camera publishes ~/color/image_raw (rgb8)
        return [NodeSpec(package='realsense2_camera', executable='realsense2_camera_node', name='ego',
                         namespace='camera', module=None, params_files=('config/camera/realsense.yaml',),
                         remappings=(('~/color/image_raw', EGO_IMAGE), ('~/color/camera_info', EGO_INFO)),
                         required=False)]
    if args['camera'] == 'usb_cam':     # usb_cam publishes image_raw (rgb8 from YUYV) and camera_info
        return [NodeSpec(package='usb_cam', executable='usb_cam_node_exe', name='ego', namespace='camera',
                         module=None, params_files=('config/camera/usb_cam.yaml',),
                         parameters={'video_device': args['camera_device']},
                         remappings=(('image_raw', EGO_IMAGE), ('camera_info', EGO_INFO)), required=False)]
    return []


def _visualisation_nodes(args: Mapping[str, str], use_sim_time: bool) -> list[NodeSpec]:
    """rviz2 + robot_state_publisher (left_/right_ URDF) + the joint-state relay, with rviz:=true."""
    if args['rviz'] != 'true':
        return []
    from piper_core.urdf import bimanual_urdf     # ROS-free; only needed when rviz is asked for
    return [
        NodeSpec(package='piper_bringup', executable='joint_state_relay', name='joint_state_relay',
                 module='piper_bringup.joint_state_relay',
                 parameters={'arms': _arms(args), 'use_sim_time': use_sim_time}, required=False),
        NodeSpec(package='robot_state_publisher', executable='robot_state_publisher', name='robot_state_publisher',
                 module=None, parameters={'robot_description': bimanual_urdf(), 'use_sim_time': use_sim_time},
                 required=False),
        NodeSpec(package='rviz2', executable='rviz2', name='rviz2', module=None,
                 arguments=('-d', '{share}/config/aha_wam.rviz'), required=False),
    ]


def nodes(profile: str, given: Mapping[str, str] | None = None) -> list[NodeSpec]:
    """The node specs of `profile` for the launch arguments `given` (defaults fill the rest)."""
    args = resolve_arguments(profile, given)
    return _profile_nodes(profile, args) + _visualisation_nodes(args, args.get('use_sim_time') == 'true'
                                                               or profile == 'replay')


def _profile_nodes(profile: str, args: Mapping[str, str]) -> list[NodeSpec]:
    if profile == 'sim':
        use_sim_time = args['use_sim_time'] == 'true'
        return [
            NodeSpec(package='piper_bringup', executable='piper_sim', name='piper_sim',
                     module='piper_bringup.piper_sim',
                     params_files=('config/piper/piper_sim.yaml',),
                     parameters={'task': args['task'], 'level': args['level'], 'seed': int(args['seed']),
                                 'camera_rate': float(args['camera_rate']),
                                 'arms': _arms(args), 'publish_clock': use_sim_time,
                                 'use_sim_time': False}),   # the simulator is the clock's source
            _streamer(args, use_sim_time),
            *_policy_nodes(args, use_sim_time),
        ]
    if profile == 'replay':
        if not args['bag']:
            raise ValueError('profile replay needs bag:=<path to a recorded bag>')
        player = NodeSpec(package='aha_wam', executable='bag_player', name='bag_player',
                          module='aha_wam.ros.bag_player',
                          parameters={'bag': args['bag'], 'rate': float(args['rate']),
                                      'start_paused': args['start_paused'] == 'true',
                                      'topic_map': args['topic_map'], 'use_sim_time': False})
        return [player, *_policy_nodes(args, use_sim_time=True)]
    # real: AgileX's driver, one process per arm in its own namespace, so that each arm has its own
    # enable_flag / enable_srv (start_two_piper.launch.py shares them: notes/piper.md §3).
    drivers = [
        NodeSpec(package='piper', executable='piper_single_ctrl', name='piper_ctrl_single_node', module=None,
                 namespace=ns, params_files=('config/piper/piper_real.yaml',),
                 parameters={'can_port': args[port]}, ros_arguments=('--log-level', args['driver_log_level']))
        for ns, port in zip(_arms(args), ('can_left_port', 'can_right_port'))
    ]
    policy = _policy_nodes(args, use_sim_time=False)
    for i, spec in enumerate(policy):   # the executor checks the drivers' joint names when it activates
        if spec.name == 'executor':
            policy[i] = dataclasses.replace(spec, parameters={**spec.parameters,
                                                             'joint_name_map': args['joint_name_map']})
    return drivers + [_streamer(args, use_sim_time=False), *_camera_nodes(args), *policy]
