// validators tests
