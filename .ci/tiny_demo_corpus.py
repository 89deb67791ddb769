"""Write a tiny demo corpus (4 identities, 28 clips) for .ci/user_commands.sh: the demo's own
generator, so `fer-jax build demo_av/gray64_t8 --manual-dir OUT` builds it in seconds, not minutes."""

import sys

from data_builders.demo_av import synth

if __name__ == "__main__":  # the generator spawns worker processes
    identities, _ = synth.load_identities()
    synth.write_demo_corpus(sys.argv[1], val_fraction=0.25, num_workers=2, identities=identities[:4])
