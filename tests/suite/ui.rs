// ui tests
