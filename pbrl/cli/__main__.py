"""``python -m pbrl.cli`` runs the ``pbrl`` command line."""

from pbrl.cli import main

main()
