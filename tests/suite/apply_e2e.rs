// apply_e2e tests
