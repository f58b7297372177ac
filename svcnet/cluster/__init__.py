"""Local clusters: `svcnet up` / `svcnet down`, topology, process supervision."""
