"""Offline stand-in for ansible-test's pip bootstrap script (``~/.ansible/test/cache/get_pip_<ver>.py``).

ansible-test downloads get-pip.py from a host that is unreachable here. This
installs pip from the wheel bundled with Python's ``ensurepip`` and lets that
pip upgrade itself from the package index, with the arguments ansible-test gave.
"""

import ensurepip
import glob
import os
import sys


def main() -> None:
    wheel = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))[0]
    sys.path.insert(0, wheel)
    from pip._internal.cli.main import main as pip_main

    args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    sys.exit(pip_main(["install", "--upgrade", "--force-reinstall", *args]))


if __name__ == "__main__":
    main()
