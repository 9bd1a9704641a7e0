"""access-api: multi-tenant user and access management for MSPs."""
