"""ament_python package `piper_core`: the ROS-free bimanual Piper floor (layout, streamer core, simulator)."""
import os

from setuptools import find_packages, setup

os.chdir(os.path.dirname(os.path.abspath(__file__)))  # relative paths wherever colcon or pip runs us from
PACKAGE = 'piper_core'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    # the task YAMLs travel inside the Python package, so they are found with or without ament
    package_data={PACKAGE: ['config/tasks/*.yaml', 'sim/README.md']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='AHA-WAM maintainers',
    maintainer_email='aha-wam@example.org',
    description='ROS-free bimanual AgileX Piper: layout, driver semantics, trajectory streamer core, MuJoCo simulator, tasks, experts.',
    license='Apache-2.0',
)
