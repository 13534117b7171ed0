"""One command runs a whole monitored lab on loopback: ``make demo`` (``python -m optilab.demo``)."""
