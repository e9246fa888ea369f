package preheat

// Announces is announces, for the tests.
var Announces = announces
