"""`python -m nac.bench`: the same command as `nac bench`."""

from nac.cli.bench import main

main()
