"""`python -m monitor` is `finmon`."""

from monitor.cli import main

main()
