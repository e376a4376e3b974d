"""Plumbing several apps share, with no models and no app of its own.

Every app may import from here; nothing here imports an app. See docs/design.md ("Apps").
"""
