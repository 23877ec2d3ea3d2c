"""A local emulator of DingTalk v1.0 approvals, the XBB v2 CRM and a group robot.

fzr's tests, demo and benchmark run against it, since nobody can reach the real
services. See scenario.py for the scenario format and faults.py for fault injection.
"""

from .dingtalk import FORM_FIELDS
from .emulator import Call, Sandbox, serve
from .robot import robot_sign
from .scenario import load_scenario, scenario_path
from .xbb import MADE_UP_CODES, sign as xbb_sign

__all__ = [
    "FORM_FIELDS",
    "MADE_UP_CODES",
    "Call",
    "Sandbox",
    "load_scenario",
    "robot_sign",
    "scenario_path",
    "serve",
    "xbb_sign",
]
