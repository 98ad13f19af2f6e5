// golden tests
