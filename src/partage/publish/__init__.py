"""Catalog entries for reuse: Data Package now; CKAN and DCAT-AP targets come next."""
