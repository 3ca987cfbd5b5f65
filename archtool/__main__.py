"""``python -m archtool`` runs the CLI."""
from archtool.cli.app import main

main()
