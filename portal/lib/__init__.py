"""Plumbing several apps share; no models, and it imports no app."""
