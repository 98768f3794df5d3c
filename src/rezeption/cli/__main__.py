"""`python -m rezeption.cli`: the same commands as the `rezeption` console script."""

from rezeption.cli import app

app()
