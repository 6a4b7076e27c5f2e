"""`python -m cycleml` runs the command line."""

from .cli import main

main()
