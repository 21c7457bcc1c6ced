"""Certificates for mutual TLS: uploads, IS 7 thumbprint mappings, how IS decides a call, truststores."""
