"""The pure domain: rules as functions over values. Standard library only; no I/O."""
