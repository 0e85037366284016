# Copyright (c) 2026 Lamassu IoT contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of one host's upgrade, decided from what ``postgres_lamassu_info`` read and what the run asks for.

``upgrade.yml`` follows it: whether the host is done (its fast path), the steps to run, which copies run in the
foreground and which in the background (with their progress files), which reading the report reuses, and every
problem with its fix. The playbooks test booleans and lists of it; the rules are here, with their unit tests.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from .errors import InvalidInput
from .lamassu import MOVE_MODES

# The steps of upgrade.yml, in their order: ``copy`` (offline) or ``live`` and ``switch`` (online: the copy runs
# while the services run, the switch applies the last changes once they are stopped).
STEPS = ("lock", "preflight", "live", "stop", "copy", "switch", "migrate", "cutover", "login_check", "start")

# A copy in the background has no time limit of its own: Ansible's async limit is then a day.
BACKGROUND_SECONDS = 86400
PROGRESS_FILE = "{dir}/lamassu-db-to-schema-{host}-{database}-{service}.json"


@dataclass(frozen=True)
class RunChoices:
    """What the run asks for (the ``plan`` option of postgres_lamassu_info)."""

    host: str = "localhost"
    cutover_target: str = "none"
    start_services: bool = False
    login_check: bool = True
    copy_parallel: bool = False
    async_threshold_mb: float = 512
    async_jobs: bool = True
    async_seconds: int = 0
    progress_dir: str = "~/.ansible_async"
    # The cutover's reading is the report's when both read the same legacy databases.
    cutover_source_prefix: str = ""
    report_source_prefix: str = ""
    # Problems found on the controller (the migrations tree, the report directory), as their own sentences.
    controller_problems: tuple[str, ...] = ()
    # The connection's TLS files missing on the host: option -> path.
    tls_missing: dict = field(default_factory=dict)
    # How the legacy databases are copied (lamassu_move_mode): with the services stopped, or while they run.
    move_mode: str = field(default="offline", metadata={"choices": MOVE_MODES})

    @classmethod
    def from_option(cls, option: dict | None) -> RunChoices:
        """The choices of the module's option, or of a role's variables (strings from ``-e`` included), checked and
        converted as Ansible checks the option; None and missing entries take the defaults. InvalidInput names
        every bad entry."""
        given = {key: value for key, value in (option or {}).items() if value is not None}
        checked = ArgumentSpecValidator(OPTION).validate(given)
        if checked.error_messages:
            raise InvalidInput(f"plan: {'; '.join(checked.error_messages)}")
        values = checked.validated_parameters
        return cls(**{**values, "controller_problems": tuple(values["controller_problems"])})


# The Ansible type of each RunChoices field, for the module's option.
_ANSIBLE_TYPES = {
    "str": "str",
    "bool": "bool",
    "float": "float",
    "int": "int",
    "tuple[str, ...]": "list",
    "dict": "dict",
}


def _option() -> dict:
    spec = {}
    for choice in fields(RunChoices):
        kind = _ANSIBLE_TYPES[choice.type]
        default = choice.default if choice.default is not MISSING else choice.default_factory()
        spec[choice.name] = {"type": kind, "default": list(default) if kind == "list" else default}
        if kind == "list":
            spec[choice.name]["elements"] = "str"
        if "choices" in choice.metadata:
            spec[choice.name]["choices"] = list(choice.metadata["choices"])
    return spec


# The ``plan`` option of postgres_lamassu_info: RunChoices' fields, with their defaults.
OPTION = _option()


def copy_plan(services: list[str], legacy: dict, choices: RunChoices, database: str, check_mode: bool) -> dict:
    """Which copies run in the foreground (one module run, in order) and which in the background (Ansible async
    jobs, waited for with a progress line): all with ``copy_parallel``, else those whose legacy database (``legacy``:
    service -> its facts, as info returns them) is larger than the threshold; none in check mode (Ansible refuses
    async there) nor where the host cannot run async jobs."""
    threshold = choices.async_threshold_mb * 1000000
    sizes = {s: (legacy.get(s) or {}).get("size_bytes") for s in services}
    if check_mode or not choices.async_jobs:
        background = []
    elif choices.copy_parallel:
        background = list(services)
    else:
        background = [s for s in services if isinstance(sizes.get(s), int) and sizes[s] > threshold]
    return {
        "foreground": [s for s in services if s not in background],
        "background": background,
        "progress_files": {
            s: PROGRESS_FILE.format(dir=choices.progress_dir, host=choices.host, database=database, service=s)
            for s in background
        },
        "async_seconds": 0 if check_mode or not choices.async_jobs else choices.async_seconds,
        "background_seconds": choices.async_seconds or BACKGROUND_SECONDS,
    }


def tls_problem(host: str, missing: dict) -> list[str]:
    if not missing:
        return []
    files = ", ".join(f"{option} = {path}" for option, path in missing.items())
    return [f"TLS file(s) of the connection missing on {host}: {files}"]


def problem_entries(problems: list, choices: RunChoices, online: list[dict] = ()) -> list[dict]:
    """Every problem as ``{msg, fix}``: the host's (with the module option that gets past it, when one does), what
    keeps the online move from running (``online``, already ``{msg, fix}``), then the controller's and the missing
    TLS files."""
    host_side = [{"msg": str(p), "fix": getattr(p, "fix", None)} for p in problems]
    other = [*choices.controller_problems, *tls_problem(choices.host, choices.tls_missing)]
    return host_side + list(online) + [{"msg": text, "fix": None} for text in other]


def plan(info: dict, choices: RunChoices, check_mode: bool, migrations_given: bool, database: str) -> dict:
    """The plan of a host the info module read (``info`` is its result). Online, with services still to copy, what
    keeps the online move from running (``online.problems`` of info) is a problem of the plan too."""
    legacy = info["phases"]["legacy"]
    online = choices.move_mode == "online"
    online_problems = (info.get("online") or {}).get("problems", []) if online and legacy else []
    problems = problem_entries(info["problems"], choices, online_problems)
    done = info["upgrade_done"] and not problems and choices.cutover_target == "none" and not choices.start_services
    runs = {
        "lock": not done,
        "preflight": not done,
        "live": not done and online,
        "stop": not done and bool(legacy),
        "copy": not done and not online,
        "switch": not done and online,
        "migrate": not done and migrations_given and not (check_mode and legacy),
        "cutover": not done,
        "login_check": not done and not check_mode and choices.login_check,
        "start": choices.start_services,
    }
    copies = copy_plan(list(info["services"]), info["legacy"], choices, database, check_mode)
    return {
        "done": done,
        "steps": [step for step in STEPS if runs[step]],
        "copies": copies,
        # The switch of the online move (the services stopped): every service in the foreground, one module run.
        "switch_copies": {**copies, "foreground": list(info["services"]), "background": [], "progress_files": {}},
        "report_reading": report_reading(done, choices),
        "problems": problems,
    }


def report_reading(done: bool, choices: RunChoices) -> str:
    """The reading the report reuses: preflight's on the fast path, else the cutover's (the last step that changes
    the database) when it read the same legacy databases, else none (the report reads the host again)."""
    if done:
        return "preflight"
    return "cutover" if choices.cutover_source_prefix == choices.report_source_prefix else "none"


def unread_plan(choices: RunChoices, problem: str) -> dict:
    """The plan of a host the info module could not read: that is its first problem. The run goes on to the lock
    and the preflight under it, which plans again if the server answers by then, else stops on the problems."""
    return {
        "done": False,
        "steps": ["lock", "preflight"],
        "copies": copy_plan([], {}, choices, "", True),
        "switch_copies": copy_plan([], {}, choices, "", True),
        "report_reading": "none",
        "problems": problem_entries([problem], choices),
    }
