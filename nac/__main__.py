"""`python -m nac` is the `nac` command."""

from nac.cli import main

main()
