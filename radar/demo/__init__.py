"""The seeded demo world: a realistic, messy CRM with a known truth (see data/README.md)."""

from radar.demo.world import DEFAULT_END, WorldSummary, generate_world

__all__ = ["DEFAULT_END", "WorldSummary", "generate_world"]
