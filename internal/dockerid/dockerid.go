// Package dockerid holds what the plugin knows of Docker's IDs of networks
// and endpoints, for the packages that show them.
package dockerid

// Short is the 12-character form of a Docker ID the docker CLI shows, so
// what the plugin prints can be pasted into `docker network inspect`.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
