"""The domain: every change goes through a function here, which validates, writes, audits and commits."""
