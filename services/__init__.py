"""The suite's services: booking, notify and consult. None imports another."""
