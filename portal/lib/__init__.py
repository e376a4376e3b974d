"""Plumbing several apps share. No models, and no imports of Trainyard's apps."""
