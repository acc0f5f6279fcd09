"""The bags the project writes open in `ros2 bag info/play` on Humble (deployment) and on Kilted.

What each rosbag2 parses, read from ros2/rosbag2 (no `ros2 bag` can be installed here):

* Humble (branch humble, rosbag2_storage/src/rosbag2_storage/metadata_io.cpp, rosbag2_transport/src/
  rosbag2_transport/qos.cpp): any `version`, the keys below; for version >= 4 `offered_qos_profiles` with
  `.as<std::string>()` (a YAML list there is a TypedBadConversion), then `YAML::Load` of that string into a list
  of QoS maps with integer policies (`node["history"].as<int>()`, ...) and {sec, nsec} durations. Unknown keys
  are ignored.
* Kilted/rolling (rosbag2_storage/include/rosbag2_storage/yaml.hpp, src/rosbag2_storage/qos.cpp): the same for
  version < 9 (integer policies in a string), plus `custom_data` (>= 6), `type_description_hash` (>= 7) and
  `ros_distro` (>= 8). Version 9 writes the QoS as a YAML list of names, which Humble cannot read.

The rules are data here; the test writes a bag with the project's BagWriter and parses its metadata.yaml by them.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from aha_wam.data.bag import (BAG_VERSION, COMMAND_TOPICS, IMAGE_TOPIC, INSTRUCTION_TOPIC, JOINT_TOPICS,
                              STATUS_TOPIC, BagWriter)

# key -> (Python type after yaml.safe_load, the first metadata version that has it, who reads it)
BAG_KEYS = {
    'version': (int, 1, 'both'), 'storage_identifier': (str, 1, 'both'), 'message_count': (int, 1, 'both'),
    'relative_file_paths': (list, 1, 'both'), 'compression_format': (str, 3, 'both'),
    'compression_mode': (str, 3, 'both'), 'files': (list, 5, 'both'),
    'custom_data': ((dict, type(None)), 6, 'kilted'), 'ros_distro': (str, 8, 'kilted'),
}
TOPIC_KEYS = {'name': (str, 1), 'type': (str, 1), 'serialization_format': (str, 1),
              'offered_qos_profiles': (str, 4),            # a string up to version 8 on both; Humble: always
              'type_description_hash': (str, 7)}
QOS_INT_KEYS = ('history', 'depth', 'reliability', 'durability', 'liveliness')
QOS_TIME_KEYS = ('deadline', 'lifespan', 'liveliness_lease_duration')
HUMBLE_MAX_QOS_STRING_VERSION = 8      # from 9 on the QoS is a YAML list (rolling yaml.hpp: `if (version >= 9)`)
RMW_RELIABLE, RMW_BEST_EFFORT, RMW_KEEP_LAST, RMW_VOLATILE = 1, 2, 1, 2   # rmw/types.h enum values (both distros)


def parse_like_rosbag2(info: dict) -> dict[str, list[dict]]:
    """The checks Humble's and Kilted's metadata readers make; returns {topic: [QoS maps]} or raises."""
    version = info['version']
    assert isinstance(version, int)
    for key, (kind, since, _) in BAG_KEYS.items():
        if version >= since:
            assert key in info and isinstance(info[key], kind), f'{key}: {info.get(key)!r} is not {kind}'
    assert isinstance(info['duration']['nanoseconds'], int)
    assert isinstance(info['starting_time']['nanoseconds_since_epoch'], int)
    for f in info['files']:
        assert isinstance(f['path'], str) and isinstance(f['message_count'], int)
        assert isinstance(f['starting_time']['nanoseconds_since_epoch'], int)
        assert isinstance(f['duration']['nanoseconds'], int)
    for value in (info.get('custom_data') or {}).values():   # Kilted: map<string, string>
        assert isinstance(value, str)
    qos = {}
    for entry in info['topics_with_message_count']:
        assert isinstance(entry['message_count'], int)
        meta = entry['topic_metadata']
        for key, (kind, since) in TOPIC_KEYS.items():
            if version >= since:
                assert isinstance(meta[key], kind), f'{meta["name"]}: {key} {meta.get(key)!r} is not {kind}'
        profiles = yaml.safe_load(meta['offered_qos_profiles']) if meta['offered_qos_profiles'] else []
        assert isinstance(profiles, list)
        for p in profiles:
            for key in QOS_INT_KEYS:
                assert type(p[key]) is int, f'{meta["name"]}: {key} must be an integer policy, got {p[key]!r}'
            for key in QOS_TIME_KEYS:
                assert type(p[key]['sec']) is int and type(p[key]['nsec']) is int and p[key]['sec'] >= 0
            assert isinstance(p['avoid_ros_namespace_conventions'], bool)
        qos[meta['name']] = profiles
    return qos


@pytest.fixture(scope='module')
def project_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'episode_0000'
    w = BagWriter(path)
    w.string(INSTRUCTION_TOPIC, 'lift the box', 1_000_000_000)
    for k in range(5):
        t = 1_000_000_000 + k * 20_000_000
        for arm in JOINT_TOPICS:
            w.joints(JOINT_TOPICS[arm], np.zeros(7), t)
            w.joints(COMMAND_TOPICS[arm], np.zeros(7), t)
        w.image(np.zeros((8, 8, 3), np.uint8), t)
    w.string(STATUS_TOPIC, json.dumps({'success': True}), 1_100_000_000)
    return w.close({'task': 'lift_box', 'seed': 3, 'success': True})


def test_bag_metadata_is_what_humble_and_kilted_parse(project_bag):
    info = yaml.safe_load((project_bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == BAG_VERSION <= HUMBLE_MAX_QOS_STRING_VERSION
    assert info['storage_identifier'] == 'mcap'        # Humble: apt ros-humble-rosbag2-storage-mcap
    qos = parse_like_rosbag2(info)
    # every topic offers exactly the QoS of its live publisher, so `ros2 bag play` matches the nodes' subscriptions
    assert set(qos) == {IMAGE_TOPIC, INSTRUCTION_TOPIC, STATUS_TOPIC, *JOINT_TOPICS.values(), *COMMAND_TOPICS.values()}
    assert [(p['reliability'], p['depth']) for p in qos[IMAGE_TOPIC]] == [(RMW_BEST_EFFORT, 1)]
    for topic in (*JOINT_TOPICS.values(), *COMMAND_TOPICS.values()):
        assert [(p['reliability'], p['history'], p['durability']) for p in qos[topic]] == \
            [(RMW_RELIABLE, RMW_KEEP_LAST, RMW_VOLATILE)]
    assert json.loads(info['custom_data']['aha_wam.episode'])['seed'] == 3


def test_checker_refuses_a_version_9_qos_list(project_bag):
    """A test of the rules above: the version-9 form (QoS as a YAML list of names) is what Humble cannot read."""
    info = yaml.safe_load((project_bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    entry = info['topics_with_message_count'][0]['topic_metadata']
    entry['offered_qos_profiles'] = [{'history': 'keep_last', 'depth': 1, 'reliability': 'reliable'}]
    with pytest.raises(AssertionError, match='offered_qos_profiles'):
        parse_like_rosbag2(info)
    entry['offered_qos_profiles'] = "- history: keep_last\n  depth: 1\n  reliability: reliable\n"
    with pytest.raises(AssertionError, match='integer policy'):
        parse_like_rosbag2(info)


def test_bag_reads_back_with_its_qos(project_bag):
    """The rosbag2 reader used by the project's tools still opens it, counts and QoS included."""
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import Reader
    with Reader(project_bag) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        assert by_topic[IMAGE_TOPIC].msgcount == 5
        assert by_topic[IMAGE_TOPIC].ext.offered_qos_profiles[0].reliability == QosReliability.BEST_EFFORT
        assert by_topic[JOINT_TOPICS['left']].ext.offered_qos_profiles[0].reliability == QosReliability.RELIABLE
