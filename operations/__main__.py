"""`python -m operations …`, the same as the installed `adtech` command."""
from operations import main

main()
