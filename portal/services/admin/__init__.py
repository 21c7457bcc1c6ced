"""Administrators, API clients, sessions, passwords, the audit trail and the instance status."""
