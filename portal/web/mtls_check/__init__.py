"""The "Test mutual TLS to IS 7" page: a live call with the portal's client certificate, explained. Admins run it;
operators and auditors may open the page."""
