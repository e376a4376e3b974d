"""The audit log: who did what, when and from where, for admin and security-relevant actions.

Low in the app order (it imports no other app of ours) because every app writes to it.
"""
