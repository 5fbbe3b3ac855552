package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/ipvlan-bgp/ipvlan-bgp/status"
)

// pluginMounts is where Docker keeps each managed plugin's propagated mount
// on the host: the plugin's /state is this directory, so its status socket
// shows up here.
const pluginMounts = "/var/lib/docker/plugins/*/propagated-mount/status.sock"

// statusCommand is `ipvlan-bgp status [--json] [--socket PATH]`, run on the
// host: it prints the running plugin's state. It returns the exit code.
func statusCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("ipvlan-bgp status", flag.ContinueOnError)
	flags.SetOutput(stderr)
	asJSON := flags.Bool("json", false, "print the status document as JSON")
	socket := flags.String("socket", "", "the plugin's STATUS_SOCKET as seen from here (default: found under /var/lib/docker/plugins, or /state/status.sock)")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "ipvlan-bgp status: unexpected argument %q\n", flags.Arg(0))
		return 2
	}
	path, err := findSocket(*socket, getenv)
	if err == nil {
		err = printStatus(ctx, path, *asJSON, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ipvlan-bgp status:", err)
		return 1
	}
	return 0
}

func printStatus(ctx context.Context, socket string, asJSON bool, out io.Writer) error {
	doc, err := status.Fetch(ctx, socket)
	if err != nil {
		return err
	}
	if !asJSON {
		return status.Render(out, doc)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// findSocket picks the socket: --socket, else STATUS_SOCKET, else the one
// plugin mount holding a status socket, else /state/status.sock (inside
// the plugin's rootfs).
func findSocket(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := getenv("STATUS_SOCKET"); v != "" {
		return v, nil
	}
	found, _ := filepath.Glob(pluginMounts)
	switch len(found) {
	case 0:
		return "/state/status.sock", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("several plugins have a status socket (%s): choose one with --socket (docker plugin ls --no-trunc shows IDs)", strings.Join(found, ", "))
}
