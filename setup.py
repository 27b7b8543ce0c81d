"""Builds the optional C speedups (nac/_speedups.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and nac runs on the pure
Python twins of the same functions (``nac.speedups_active()`` says which)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "nac._speedups",
            ["nac/_speedups.c"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
