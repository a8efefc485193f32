package logger

// BucketsSQL is bucketsSQL, for the tests that write files as older
// versions did.
var BucketsSQL = bucketsSQL
