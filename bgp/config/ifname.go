package config

import "strings"

// validInterfaceName reports whether name can be a Linux interface name
// (the kernel's dev_valid_name): 1 to 15 bytes, not "." or "..", no '/',
// ':' or white space.
func validInterfaceName(name string) bool {
	return name != "" && len(name) <= 15 && name != "." && name != ".." && !strings.ContainsAny(name, "/: \t\n\r\v\f")
}
