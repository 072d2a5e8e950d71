"""Local run modes (DESIGN §6): helpers that start PostgreSQL, the Pub/Sub emulator, storage
emulators and the functions gateway on loopback, and the two stacks built from them.

    from infra.local.stack import EmbeddedStack, EmulatedStack
    with EmbeddedStack() as stack:
        env = stack.env   # what a client and the processes need
"""
