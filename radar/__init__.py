"""Radar: the application shell (configuration, command line, demo world)."""
