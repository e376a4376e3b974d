"""The node plane: agent tasks, launcher, health reporter and the torchrun trainer.

Nothing here imports Django or opens a PostgreSQL connection. A node receives a complete
spec in its task message and reports everything through Redis Streams.
"""
