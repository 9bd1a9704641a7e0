"""The only code that speaks SQL: repositories take and return domain values, never commit."""
