"""A plug-in that cannot be imported: albench says so in one line and runs without it."""

import albench_no_such_dependency  # noqa: F401
