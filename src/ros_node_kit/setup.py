"""ament_python package `ros_node_kit`: the helpers every node of the workspace uses."""
import os

from setuptools import find_packages, setup

os.chdir(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'ros_node_kit'

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
    description='run_node, range-checked parameters, deadline loops, polled subscriptions, Humble fallbacks.',
    license='Apache-2.0',
)
