# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# The modules' Python floor, checked before any other module_utils loads. Every module file imports this
# first (above an "isort: split"), because the other module_utils use syntax and library calls of Python 3.8
# that an older interpreter fails on with a traceback ("MODULE FAILURE") instead of a reason. This file keeps
# to syntax that Python 2.7 and 3.5 still read, and fails the way AnsibleModule.fail_json does: JSON on
# stdout, exit status 1. (The module files themselves need Python 3 to be read: a Python 2 host gets a
# SyntaxError there, before this runs; ansible-core 2.17 and later refuse Python 2 hosts anyway.)
import json
import sys

MINIMUM = (3, 8)

if sys.version_info < MINIMUM:
    sys.stdout.write(
        json.dumps(
            {
                "failed": True,
                "msg": "The lamassuiot.postgres modules need Python %d.%d or newer on the managed host; this host "
                "ran them with Python %s (%s). Set ansible_python_interpreter for this host to a Python %d.%d "
                "or newer that has psycopg2 (e.g. /usr/bin/python3.8 or /usr/bin/python3.9 where installed)."
                % (MINIMUM + (sys.version.split()[0], sys.executable) + MINIMUM),
            }
        )
        + "\n"
    )
    raise SystemExit(1)
