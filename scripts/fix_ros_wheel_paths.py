"""Rewrite build-machine Python paths baked into the ROS 2 wheels' CMake export files.

The `ros-*` wheels on PyPI were built in a manylinux container, and about a dozen `*.cmake` files under
<venv>/share still name that container's Python include directory and numpy include directory. CMake
then refuses to import the targets ("includes non-existent path") as soon as a message package is built.
Pointing them at this interpreter's real directories fixes it. Running it again changes nothing.

Usage: python fix_ros_wheel_paths.py <venv prefix>      (prints how many files were rewritten)
"""
import pathlib
import re
import sys
import sysconfig

import numpy

# Any CPython build-container prefix, e.g. /opt/python/cp311-cp311/include/python3.11
_BUILD_INCLUDE = re.compile(r'/opt/python/cp3\d+-cp3\d+t?/include/python3\.\d+t?')
_BUILD_NUMPY = re.compile(
    r'/opt/python/cp3\d+-cp3\d+t?/lib/python3\.\d+t?/site-packages/numpy/(?:_core|core)/include')


def fix(prefix: pathlib.Path) -> int:
    include = sysconfig.get_paths()['include']
    numpy_include = numpy.get_include()
    if not pathlib.Path(include, 'Python.h').is_file():
        sys.exit(f'setup: error: Python headers missing at {include} (install python3-dev)')
    changed = 0
    for path in sorted((prefix / 'share').rglob('*.cmake')):
        text = path.read_text(errors='surrogateescape')
        new = _BUILD_NUMPY.sub(numpy_include, _BUILD_INCLUDE.sub(include, text))
        if new != text:
            path.write_text(new, errors='surrogateescape')
            changed += 1
    return changed


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(fix(pathlib.Path(sys.argv[1])))
