"""Radar features: reading, validation, identity unification and point-in-time features."""
