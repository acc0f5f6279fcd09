"""ament_python package `aha_wam_planner`."""
from setuptools import find_packages, setup

PACKAGE = 'aha_wam_planner'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='AHA-WAM maintainers',
    maintainer_email='aha-wam@example.org',
    description='AHA-WAM planner node: thin ROS I/O around the video-DiT prefill; publishes the planner context.',
    license='Apache-2.0',
    entry_points={'console_scripts': [
        'planner_node = aha_wam_planner.planner_node:main',
    ]},
)
