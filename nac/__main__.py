"""`python -m nac` is the `nac` command."""

from nac.entry import main

main()
