# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writes the report files of a run on the controller, in this process: no module is run, so writing the
Markdown, HTML and JSON of the run and the index of the directory costs milliseconds, not a module run each.

The templates are the report role's (``templates/report.md.j2``, ``report.html.j2``, ``index.html.j2``),
rendered by Jinja2 with its own filters only; what they show is decided in ``module_utils/report.py``.
"""

from __future__ import annotations

import json
import os
import tempfile

import jinja2
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.lamassuiot.postgres.plugins.module_utils.report_runs import is_run_report, run_index

display = Display()

ARGUMENT_SPEC = {"data": {"type": "dict", "required": True}}
# (template of the report role, file name: {basename} is the run's)
FILES = (
    ("report.md.j2", "{basename}.md"),
    ("report.html.j2", "{basename}.html"),
    ("index.html.j2", "index.html"),
)


def write_atomically(path: str, text: str) -> None:
    """A reader (a browser on the index) never sees half a file."""
    directory = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".lamassu-report-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def recorded_runs(directory: str) -> list[dict]:
    """The data of every run in ``directory`` (its ``lamassu-*.json`` files); unreadable ones are left out."""
    runs = []
    for name in sorted(os.listdir(directory)):
        if not (name.startswith("lamassu-") and name.endswith(".json")):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as report:
                data = json.load(report)
        except (OSError, ValueError) as exc:
            display.warning(f"report index: {name} left out, it cannot be read: {exc}")
            continue
        if is_run_report(data):
            runs.append(data)
        else:
            display.warning(f"report index: {name} left out, it is not the data of a run report")
    return runs


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        data = args["data"]
        if not is_run_report(data) or "directory" not in data:
            raise AnsibleActionFail("data is not the report data of lamassuiot.postgres.report_fleet")
        directory = data["directory"]
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            environment = jinja2.Environment(trim_blocks=True, keep_trailing_newline=True, autoescape=False)
            written = [os.path.join(directory, f"{data['basename']}.json")]
            write_atomically(written[0], json.dumps(data, indent=2))
            values = {"report_data": data, "report_runs": run_index(recorded_runs(directory))}
            for template, name in FILES:
                with open(self._find_needle("templates", template), encoding="utf-8") as source:
                    text = environment.from_string(source.read()).render(values)
                written.append(os.path.join(directory, name.format(basename=data["basename"])))
                write_atomically(written[-1], text)
        except (OSError, jinja2.TemplateError) as exc:
            raise AnsibleActionFail(f"cannot write the reports in {directory}: {exc}") from exc
        result.update(changed=False, files=written)
        return result
