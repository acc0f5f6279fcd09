"""ament_python package `aha_wam_executor`."""
from setuptools import find_packages, setup

PACKAGE = 'aha_wam_executor'

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
    description='AHA-WAM executor node: thin ROS I/O around the action-DiT; streams joint trajectories to two Piper arms.',
    license='Apache-2.0',
    entry_points={'console_scripts': [
        'executor_node = aha_wam_executor.executor_node:main',
    ]},
)
