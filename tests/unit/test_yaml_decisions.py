"""Decisions are made in Python: no Jinja expression in roles/ or playbooks/ runs over more than one line, except
the text of a message (msg, *_message, *_hint, *_command, fail_msg, description)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# Keys whose value is text shown to a person, which may be long and templated.
MESSAGE_KEY = re.compile(r"^(msg|fail_msg|success_msg|content|description|.*_message|.*_hint|.*_command|.*_text)$")


def multi_line_expressions(node, text: str, key: str = ""):
    """(key, source) of every value written over several lines of the file that holds a Jinja expression or
    statement, or is a condition, outside message text."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            yield from multi_line_expressions(v, text, str(k.value))
    elif isinstance(node, yaml.SequenceNode):
        for v in node.value:
            yield from multi_line_expressions(v, text, key)
    elif isinstance(node, yaml.ScalarNode) and not MESSAGE_KEY.match(key):
        source = text[node.start_mark.index : node.end_mark.index].rstrip()
        templated = "{{" in node.value or "{%" in node.value or key in ("when", "changed_when", "failed_when")
        if templated and len(source.splitlines()) > 1:
            yield key, source


def test_no_multi_line_jinja_decision_in_roles_and_playbooks():
    files = sorted([*ROOT.glob("roles/**/*.yml"), *ROOT.glob("playbooks/**/*.yml")])
    assert files
    found = [
        f"{path.relative_to(ROOT)}:{key}: {source[:80]!r}"
        for path in files
        for text in [path.read_text()]
        for document in yaml.compose_all(text)
        for key, source in multi_line_expressions(document, text)
    ]
    assert found == []


def test_the_scan_finds_a_decision_over_several_lines_but_not_message_text():
    text = """\
- name: A task
  ansible.builtin.debug:
    msg: >-
      {{ 'a message may run
         over lines' }}
  vars:
    decided: >-
      {{ 'x' if a
         else 'y' }}
    one_line: "{{ 'x' if a else 'y' }}"
  when: >-
    a
    or b
"""
    found = [key for document in yaml.compose_all(text) for key, _source in multi_line_expressions(document, text)]
    assert found == ["decided", "when"]
