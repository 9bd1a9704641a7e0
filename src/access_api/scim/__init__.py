"""SCIM 2.0 provisioning: a sub-application with SCIM errors of its own."""
