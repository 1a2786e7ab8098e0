"""Scenario files shipped with baton (`baton sim list-scenarios`); package data, not code."""
