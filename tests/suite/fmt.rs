// fmt tests
