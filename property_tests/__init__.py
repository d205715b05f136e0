"""simple-net's Hypothesis property suite: the reference against JAX and finite differences.

See README.md in this folder.
"""
