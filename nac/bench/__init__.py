"""The load generator behind `nac bench` (and `python -m nac.bench`)."""
