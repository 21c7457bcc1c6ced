"""Outbound I/O: every connection the portal makes to another system goes through a module here."""
