"""Radar serving: scoring library, reasons, BentoML service and web page."""
