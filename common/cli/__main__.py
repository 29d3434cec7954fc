"""`python -m common.cli …`, the same as the installed `adtech` command."""
from common.cli import main

main()
