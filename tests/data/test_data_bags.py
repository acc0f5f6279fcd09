"""The one bag reader (aha_wam.data.rosbag) and the one image decoder (aha_wam.data.images): several named
cameras at native resolution, leader commands standing in for commands, the time alignment to the control
grid, and bad bags failing with one BagError line naming the bag and what is wrong."""
import numpy as np
import pytest

from aha_wam.data.bag import BagWriter, read_episode_bag
from aha_wam.data.images import ImageError, encoded_to_rgb, raw_to_rgb, rgb_to_png
from aha_wam.data.rosbag import BagError, read_bag
from aha_wam.data.topic_map import TopicMapError, load_topic_map, parse_topic_map

MS = 1_000_000
T0 = 3 * 10**9
J, I = 'sensor_msgs/msg/JointState', 'sensor_msgs/msg/Image'
CAM_TOPICS = {'cam_high': '/camera_f/color/image_raw', 'cam_left_wrist': '/camera_l/color/image_raw',
              'cam_right_wrist': '/camera_r/color/image_raw'}


def write_teleop_like_bag(path, steps=40, leader=True):
    """cobot_magic_ros2 names: follower states at 200 Hz, leader commands (joint_ctrl) at 50 Hz, two cameras at
    25 Hz (front 48x64, wrists 24x32, stamped 1 ms after their control step)."""
    tmap = load_topic_map('cobot_magic_ros2')
    topics = {tmap.topic('joint_states_left'): J, tmap.topic('joint_states_right'): J,
              **{t: I for t in CAM_TOPICS.values()}}
    cmd_role = 'leader' if leader else 'commands'
    topics.update({tmap.topic(f'{cmd_role}_left'): J, tmap.topic(f'{cmd_role}_right'): J})
    w = BagWriter(path, topics)
    for n in range(4 * steps):                               # 5 ms
        for i, arm in enumerate(('left', 'right')):
            w.joints(tmap.topic(f'joint_states_{arm}'), np.arange(7) * 0.01 + n * 0.001 + i, T0 + n * 5 * MS)
            if n % 4 == 0:
                w.joints(tmap.topic(f'{cmd_role}_{arm}'), np.arange(7) * 0.01 + n * 0.001 + i + 0.5, T0 + n * 5 * MS)
    for k in range(0, steps, 2):
        w.image(np.full((48, 64, 3), k, np.uint8), T0 + k * 20 * MS + MS, topic=CAM_TOPICS['cam_high'])
        w.image(np.full((24, 32, 3), 100 + k, np.uint8), T0 + k * 20 * MS + MS, topic=CAM_TOPICS['cam_left_wrist'])
        w.image(np.full((24, 32, 3), 200 + k, np.uint8), T0 + k * 20 * MS + MS, topic=CAM_TOPICS['cam_right_wrist'])
    return w.close({'task': 'lift_box', 'control_hz': 50.0})


def test_named_cameras_at_native_resolution_and_leader_actions(tmp_path):
    bag = write_teleop_like_bag(tmp_path / 'bag')
    tmap = load_topic_map('cobot_magic_ros2')
    rec = read_bag(bag, tmap, all_cameras=True)
    assert list(rec.cameras) == list(CAM_TOPICS) and rec.action_source == {'left': 'leader',
                                                                                           'right': 'leader'}
    assert rec.cameras['cam_left_wrist'][1][0].shape == (24, 32, 3)
    assert list(read_bag(bag, tmap).cameras) == ['cam_high']            # eval-bag: the primary camera only
    ep = read_episode_bag(bag, topic_map=tmap)
    assert ep.camera == 'cam_high' and ep.meta['actions_from'] == ['leader']
    # t0 = the first image (+1 ms); step k at t0 + 20k ms; newest 200 Hz state n = 4k, newest 50 Hz command n = 4k
    k = np.arange(ep.length)
    np.testing.assert_allclose(ep.proprio[:, :7], np.arange(7)[None] * 0.01 + 4 * k[:, None] * 0.001, atol=1e-6)
    np.testing.assert_allclose(ep.actions[:, 7:], np.arange(7)[None] * 0.01 + 4 * k[:, None] * 0.001 + 1.5, atol=1e-6)
    for name, base, hw in (('cam_high', 0, (48, 64)), ('cam_left_wrist', 100, (24, 32))):
        steps, frames = ep.cameras[name]
        np.testing.assert_array_equal(steps, np.arange(0, ep.length, 2)[:len(steps)])
        assert frames.shape[1:3] == hw
        np.testing.assert_array_equal(frames[:, 0, 0, 0], base + steps)
    assert ep.length == 39       # the last image (step 38) ends the image streams
    # commands win over leader topics when a bag has both kinds; a map without either fails clearly
    bag2 = write_teleop_like_bag(tmp_path / 'bag2', leader=False)
    assert read_bag(bag2, tmap).action_source == {'left': 'commands', 'right': 'commands'}


def test_bad_bags_give_one_line_naming_the_bag(tmp_path):
    bag = write_teleop_like_bag(tmp_path / 'bag')
    with pytest.raises(BagError) as e:
        read_bag(bag)                                                 # default (aha_wam) names
    msg = str(e.value)
    assert '\n' not in msg and str(bag) in msg and 'missing topics image (/camera/ego/image_raw)' in msg
    ours = BagWriter(tmp_path / 'no_actions', {'/camera/ego/image_raw': I, '/left/joint_states_single': J,
                                                '/right/joint_states_single': J})
    ours.image(np.zeros((4, 4, 3), np.uint8), T0)
    with pytest.raises(BagError) as e:
        read_bag(ours.close())
    assert 'missing topics commands_left (/left/joint_ctrl_single) [or leader_left (/left/joint_ctrl)]' in str(e.value)
    tmap = parse_topic_map({'topics': {**load_topic_map('cobot_magic_ros2').topics},
                            'cameras': {'cam_high': '/camera_f/color/image_raw', 'cam_top': '/camera_t/image_raw'}})
    with pytest.raises(BagError, match=r'missing camera topics cam_top \(/camera_t/image_raw\)'):
        read_bag(bag, tmap, all_cameras=True)
    with pytest.raises(TopicMapError, match='cameras.bad name'):
        parse_topic_map({'topics': {'image': '/a'}, 'cameras': {'bad name': '/a'}})


def test_one_image_decoder():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), np.uint8)
    padded[:, :9] = rgb.reshape(2, 9)
    np.testing.assert_array_equal(raw_to_rgb('rgb8', 2, 3, 12, padded.tobytes()), rgb)
    np.testing.assert_array_equal(raw_to_rgb('bgr8', 2, 3, 9, rgb[..., ::-1].tobytes()), rgb)
    rgba = np.concatenate([rgb, np.full((2, 3, 1), 7, np.uint8)], -1)
    np.testing.assert_array_equal(raw_to_rgb('rgba8', 2, 3, 12, rgba.tobytes()), rgb)
    assert raw_to_rgb('mono8', 2, 3, 3, rgb[..., 0].tobytes()).shape == (2, 3, 3)
    np.testing.assert_array_equal(encoded_to_rgb(rgb_to_png(rgb)), rgb)
    for bad, match in ((('yuv422', 2, 3, 9, b'\0' * 18), 'not supported'), (('rgb8', 2, 3, 9, b'\0' * 5), 'needs 18'),
                       (('rgb8', 2, 3, 4, b'\0' * 18), 'step must be')):
        with pytest.raises(ImageError, match=match):
            raw_to_rgb(*bad)
    with pytest.raises(ImageError, match='cannot decode'):
        encoded_to_rgb(b'not a png')
