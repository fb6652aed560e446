module repeater/interop

go 1.19

require github.com/hashicorp/yamux v0.0.0-00010101000000-000000000000

// Debian's golang-github-hashicorp-yamux-dev (0.0+git20190923.df201c7);
// no module proxy is reachable, so build with GOPROXY=off GOFLAGS=-mod=mod.
replace github.com/hashicorp/yamux => /usr/share/gocode/src/github.com/hashicorp/yamux
