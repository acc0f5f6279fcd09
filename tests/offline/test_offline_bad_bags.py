"""Bad bags give one clear error line naming what is missing or broken (exit 2), never a stack trace."""
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from _offline_support import write_bag
from aha_wam.cli import main


@pytest.fixture(scope='module')
def good(tmp_path_factory):
    return write_bag(tmp_path_factory.mktemp('good') / 'bag', steps=30)


def _mcap(bag):
    return next(bag.glob('*.mcap'))


def _copy(good, tmp_path, name):
    return shutil.copytree(good, tmp_path / name)


def _with_crc(data: bytearray) -> bytearray:
    """Store the chunk CRC-32 as `ros2 bag record` does (rosbags writes 0)."""
    off = 8 + 35           # magic + header record of a rosbags MCAP file
    assert data[off] == 0x06
    b = off + 9
    clen = struct.unpack_from('<I', data, b + 28)[0]
    rlen = struct.unpack_from('<Q', data, b + 32 + clen)[0]
    struct.pack_into('<I', data, b + 24, zlib.crc32(bytes(data[b + 40 + clen:b + 40 + clen + rlen])))
    return data


def _run(capsys, bag, ckpt, *extra):
    code = main(['eval-bag', str(bag), '--checkpoint', ckpt, '--no-plots', *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert err.startswith('aha-wam eval-bag: error: ')
    return err


def test_offline_missing_topic(capsys, tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / 'bag', steps=10, skip_roles=('commands_right',))
    err = _run(capsys, bag, tiny_checkpoint)
    assert 'missing topics commands_right (/right/joint_ctrl_single)' in err and '--topic-map' in err


def test_offline_agilex_bag_without_map(capsys, tmp_path, tiny_checkpoint):
    from aha_wam.data.topic_map import load_topic_map
    bag = write_bag(tmp_path / 'bag', steps=10, topics=load_topic_map('agilex').topics)
    err = _run(capsys, bag, tiny_checkpoint)
    assert 'missing topics image (/camera/ego/image_raw)' in err and '/joint_states_single_l' in err


def test_offline_wrong_type(capsys, tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / 'bag', steps=10, types={'joint_states_left': 'std_msgs/msg/String'})
    err = _run(capsys, bag, tiny_checkpoint)
    assert ('topic /left/joint_states_single (joint_states_left) has type std_msgs/msg/String, expected '
            'sensor_msgs/msg/JointState') in err


def test_offline_empty_bag(capsys, tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / 'bag', no_messages=True)
    assert 'empty bag' in _run(capsys, bag, tiny_checkpoint)


def test_offline_truncated_bag(capsys, tmp_path, good, tiny_checkpoint):
    bag = _copy(good, tmp_path, 'trunc')
    f = _mcap(bag)
    f.write_bytes(f.read_bytes()[:int(f.stat().st_size * 0.7)])
    assert 'truncated' in _run(capsys, bag, tiny_checkpoint)


def test_offline_corrupt_chunk(capsys, tmp_path, good, tiny_checkpoint):
    bag = _copy(good, tmp_path, 'crc')
    f = _mcap(bag)
    data = _with_crc(bytearray(f.read_bytes()))
    data[5000:5064] = b'\xa5' * 64                          # inside the chunk's records
    f.write_bytes(bytes(data))
    assert 'chunk 1/1 at byte 43 is corrupt: CRC-32 mismatch' in _run(capsys, bag, tiny_checkpoint)
    bag = _copy(good, tmp_path, 'header')
    f = _mcap(bag)
    data = bytearray(f.read_bytes())
    data[43:52] = b'\x00' * 9                               # the chunk's record header
    f.write_bytes(bytes(data))
    assert 'chunk 1/1 at byte 43 is corrupt (bad record header)' in _run(capsys, bag, tiny_checkpoint)


def test_offline_corrupt_record_inside_chunk(capsys, tmp_path, good, tiny_checkpoint):
    """Without a CRC (rosbags-written bags), a broken message still surfaces when it is deserialised."""
    bag = _copy(good, tmp_path, 'msg')
    f = _mcap(bag)
    data = bytearray(f.read_bytes())
    n = len(data)
    data[n // 2:n // 2 + 100] = b'\x07' * 100
    f.write_bytes(bytes(data))
    err = _run(capsys, bag, tiny_checkpoint)
    assert 'corrupt' in err


def test_offline_corrupt_sqlite_and_not_a_bag(capsys, tmp_path, tiny_checkpoint):
    bag = write_bag(tmp_path / 'db', steps=10, storage='sqlite3')
    db = next(bag.glob('*.db3'))
    data = bytearray(db.read_bytes())
    data[0:100] = b'\x00' * 100
    db.write_bytes(bytes(data))
    assert 'db' in _run(capsys, bag, tiny_checkpoint)
    (tmp_path / 'plain').mkdir()
    assert 'not a rosbag2 directory (no metadata.yaml)' in _run(capsys, tmp_path / 'plain', tiny_checkpoint)


def test_offline_cli_process_prints_one_line(tmp_path, good, tiny_checkpoint):
    bag = _copy(good, tmp_path, 'trunc')
    f = _mcap(bag)
    f.write_bytes(f.read_bytes()[:1000])
    p = subprocess.run([sys.executable, '-m', 'aha_wam.cli', 'eval-bag', str(bag), '--checkpoint', tiny_checkpoint],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ''
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in p.stderr and 'trunc' in lines[0], p.stderr
