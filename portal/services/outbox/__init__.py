"""Propagation of tenant changes to IS 7 and API Manager (the transactional outbox).

products: the product registry and each product's delivery side; store: every write to jobs and sync state;
reads: what the pages show; delivery: carrying one job to the products; worker: the loop; reconcile and
decommission: the two flows built on them.
"""
