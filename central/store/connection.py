"""The connection the store's functions take: what `Database.write()` and `Database.reader()` give.

Code outside `central/store` holds one only to pass it back to the store's functions inside the same
transaction; it never runs a statement itself, so it does not depend on which database this is.
"""

from __future__ import annotations

import sqlite3
from typing import TypeAlias

Connection: TypeAlias = sqlite3.Connection
