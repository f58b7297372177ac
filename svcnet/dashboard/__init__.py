"""`svcnet dashboard`: a live picture of a cluster's Services in the browser (docs/DASHBOARD.md)."""
