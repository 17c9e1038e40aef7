"""``python -m lepton_runtime`` runs the ``lepton`` command."""

from lepton_runtime.cli import main

main()
