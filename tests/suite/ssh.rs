// ssh tests
