module github.com/ipvlan-bgp/ipvlan-bgp

go 1.26.8

require go.etcd.io/bbolt v1.4.3

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sys v0.31.0 // indirect
)
