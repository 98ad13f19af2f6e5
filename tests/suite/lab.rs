// lab tests
