"""A whole lab on one machine: simulated SSH hosts (or real sshd) for tests, benchmarks and the demo.

``from labsim.lab import Lab`` starts and steers a lab from any process; ``labsim.cli`` runs one on
its own (``optilab-labsim``). Nothing is imported here, so ``python -m optilab.labsim`` can monkey-patch
with gevent before anything touches sockets. See docs/labsim.md.
"""
