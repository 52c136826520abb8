from __future__ import annotations

import enum


class Role(enum.Enum):
    OWNER = "OWNER"
    MANAGER = "MANAGER"
    TECHNICIAN = "TECHNICIAN"
    FRONT_DESK = "FRONT_DESK"
