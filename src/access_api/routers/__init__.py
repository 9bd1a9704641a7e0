"""HTTP only: parse the request, ask the domain, render the answer."""
