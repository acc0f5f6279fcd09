"""ament_python package `aha_wam`: the ROS-free core library and the `aha-wam` CLI.

It also installs the workspace's top-level `launch/` and `config/` trees (reached through the
`launch` and `config` symlinks beside this file) into share/aha_wam, so that
`ros2 launch aha_wam bimanual.launch.py` and `get_package_share_directory('aha_wam')` resolve.
"""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'aha_wam'
HERE = os.path.dirname(os.path.abspath(__file__))


def tree(top):
    """data_files entries that mirror every file under `top` into share/aha_wam/<top>/..."""
    entries = {}
    for path in sorted(glob(os.path.join(top, '**', '*'), recursive=True)):
        if os.path.isfile(path) and '__pycache__' not in path:
            entries.setdefault(os.path.join('share', PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(entries.items())


os.chdir(HERE)  # glob relative paths no matter where colcon or pip runs us from
setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        *tree('launch'),
        *tree('config'),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='AHA-WAM maintainers',
    maintainer_email='aha-wam@example.org',
    description='AHA-WAM core: models, context channel, training, evaluation and the aha-wam CLI.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'aha-wam = aha_wam.cli:main',
            'context_probe = aha_wam.ros.context_probe:main',
            'bag_player = aha_wam.ros.bag_player:main',
            'policy_manager = aha_wam.ros.policy_manager:main',
        ],
    },
)
