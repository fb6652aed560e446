module repeater/benchkit

go 1.19
