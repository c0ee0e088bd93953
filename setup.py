"""The wheel's layout, which pyproject.toml cannot say: the folders at the top of the repository
install under one import name, `wingman` (wingman.engine, wingman.api, wingman.migrations, and the
statechart as wingman.statecharts), so they never meet another distribution's `api` or `engine`.
Every package under those folders ships: the list is found, never written, so it cannot go stale.
Everything else about the project is in pyproject.toml."""

from setuptools import find_packages, setup

CODE = ("engine", "api", "migrations")

setup(
    package_dir={f"wingman.{folder}": folder for folder in (*CODE, "statecharts")},
    packages=[f"wingman.{name}" for name in find_packages(include=[f"{folder}*" for folder in CODE])]
    + ["wingman.statecharts"],
    package_data={
        "wingman.migrations": ["script.py.mako"],
        "wingman.statecharts": ["*.yaml"],
        # The operator page: its templates and stylesheet, and the scripts npm put beside them.
        "wingman.api.ui": ["templates/*.html", "static/*.css", "static/vendor/*.js"],
    },
)
