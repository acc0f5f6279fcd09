"""ament_python package `piper_bringup`."""
import os
from setuptools import find_packages, setup

os.chdir(os.path.dirname(os.path.abspath(__file__)))  # relative globs wherever colcon runs us from

PACKAGE = 'piper_bringup'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml', 'README.md']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='AHA-WAM maintainers',
    maintainer_email='aha-wam@example.org',
    description='Bimanual AgileX Piper ROS nodes: the MuJoCo twin of piper_ros (piper_sim), the trajectory streamer and the URDF joint-state relay.',
    license='Apache-2.0',
    entry_points={'console_scripts': [
        'piper_sim = piper_bringup.piper_sim:main',
        'trajectory_streamer = piper_bringup.trajectory_streamer:main',
        'joint_state_relay = piper_bringup.joint_state_relay:main',
    ]},
)
