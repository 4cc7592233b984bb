package geneve

// Checksum is checksum, for the tests of package geneve_test.
var Checksum = checksum
