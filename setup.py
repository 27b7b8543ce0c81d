"""Builds the optional C speedups (nac/_speedups.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and nac runs on the pure
Python twins of the same functions, and says so in its log when it starts."""

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(
    ext_modules=[
        # The request path's byte work (decode, HMAC-MD5, the MAB password, the MAC).
        Extension("nac._speedups", ["nac/_speedups.c"], extra_compile_args=_FLAGS, optional=True),
        # recvmmsg/sendmmsg for the server's IPv4 sockets (Linux).
        Extension("nac._udp", ["nac/_udp.c"], extra_compile_args=_FLAGS, optional=True),
    ]
)
