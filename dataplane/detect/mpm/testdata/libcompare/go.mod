module weir/mpmlibcompare

go 1.26.8

replace weir => ../../../../..

require (
	github.com/BobuSumisu/aho-corasick v1.0.3
	github.com/coregx/ahocorasick v0.3.1
	weir v0.0.0
)
