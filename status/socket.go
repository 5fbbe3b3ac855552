package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/ipvlan-bgp/ipvlan-bgp/internal/logs"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/observe"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/unixsock"
)

// path is where the document is served on the socket.
const path = "/status"

// maxDocument bounds what the client reads: a host with thousands of
// containers makes a document of a few MiB.
const maxDocument = 64 << 20

// Handler answers GET /status with the document built from src.
func Handler(src observe.Sources, log *logrus.Entry) http.Handler {
	log = logs.For(log, "status")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		doc := Build(r.Context(), src)
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(doc); err != nil {
			log.WithError(err).Debug("status: client went away")
		}
	})
	return mux
}

// Fetch reads the document from the plugin's status socket.
func Fetch(ctx context.Context, socket string) (Document, error) {
	client := http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return unixsock.Dial(ctx, socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://ipvlan-bgp"+path, nil)
	if err != nil {
		return Document{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Document{}, fmt.Errorf("read status from %s (is the plugin enabled, and are you root?): %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Document{}, fmt.Errorf("read status from %s: %s", socket, resp.Status)
	}
	var doc Document
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocument)).Decode(&doc); err != nil {
		return Document{}, fmt.Errorf("read status from %s: malformed answer: %w", socket, err)
	}
	return doc, nil
}
