package status

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Render prints the document as plain-text tables, one section each, with
// full Docker IDs shortened to the 12 characters the docker CLI shows.
func Render(w io.Writer, doc Document) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	renderBGP(tw, doc.BGP)
	renderBudget(tw, doc.Budget)
	section(tw, "NETWORKS", "NETWORK\tPARENT\tMODE\tANNOUNCE\tSUBNETS\tANNOUNCED", len(doc.Networks), func(i int) string {
		n := doc.Networks[i]
		return row(short(n.ID), n.Parent, n.Mode, n.Announce, list(n.Subnets), list(n.Announced))
	})
	section(tw, "ENDPOINTS", "ENDPOINT\tNETWORK\tADDRESSES\tINTERFACE\tSANDBOX\tJOINED\tANNOUNCED", len(doc.Endpoints), func(i int) string {
		ep := doc.Endpoints[i]
		announced := list(ep.Announced)
		if ep.Fallback {
			announced += " (route budget: via subnet)"
		}
		return row(short(ep.ID), short(ep.Network), list(ep.Addresses), ep.Interface, dash(ep.Sandbox), yesNo(ep.Joined), announced)
	})
	section(tw, "POOLS", "POOL\tRANGE\tGATEWAY\tALLOCATED\tFREE", len(doc.Pools), func(i int) string {
		p := doc.Pools[i]
		return row(p.Pool, p.Range, p.Gateway, strconv.FormatUint(p.Allocated, 10), strconv.FormatUint(p.Free, 10))
	})
	section(tw, "INSTALLED ROUTES (learned over BGP)", "PREFIX\tNEXT HOPS", len(doc.Routes), func(i int) string {
		return row(doc.Routes[i].Prefix, strings.Join(doc.Routes[i].Nexthops, ", "))
	})
	for _, e := range doc.Errors {
		fmt.Fprintf(tw, "\nNOT READ: %s\n", e)
	}
	return tw.Flush()
}

func renderBGP(w io.Writer, b *BGP) {
	if b == nil {
		fmt.Fprintf(w, "BGP: off (see the plugin's log for why)\n")
		return
	}
	state := "running"
	if !b.Running {
		state = "not running"
	}
	fmt.Fprintf(w, "BGP: %s, AS %d, router ID %s, %d local prefixes\n", state, b.ASN, dash(b.RouterID), b.LocalPrefixes)
	if b.LastError != "" {
		fmt.Fprintf(w, "last BGP error: %s\n", b.LastError)
	}
	section(w, "PEERS", "PEER\tINTERFACE\tREMOTE AS\tSTATE\tBFD\tUPTIME\tRECEIVED\tACCEPTED\tADVERTISED", len(b.Peers), func(i int) string {
		p := b.Peers[i]
		return row(p.Address, dash(p.Interface), strconv.FormatUint(uint64(p.RemoteAS), 10), p.State, dash(p.BFD),
			(time.Duration(p.UptimeSeconds) * time.Second).String(),
			strconv.FormatUint(p.Received, 10), strconv.FormatUint(p.Accepted, 10), strconv.FormatUint(p.Advertised, 10))
	})
}

func renderBudget(w io.Writer, b Budget) {
	if b.Limit == 0 {
		fmt.Fprintf(w, "\nROUTE BUDGET: no limit (%d routes announced or reserved)\n", b.Used)
		return
	}
	fmt.Fprintf(w, "\nROUTE BUDGET: %d of %d routes used; past it: %s; %d endpoints refused, %d via subnet\n",
		b.Used, b.Limit, b.Fallback, b.Refused, b.FellBack)
}

// section prints a titled table, or the title and "none".
func section(w io.Writer, title, header string, rows int, rowAt func(int) string) {
	fmt.Fprintf(w, "\n%s\n", title)
	if rows == 0 {
		fmt.Fprintf(w, "none\n")
		return
	}
	fmt.Fprintf(w, "%s\n", header)
	for i := range rows {
		fmt.Fprintf(w, "%s\n", rowAt(i))
	}
}

func row(cells ...string) string { return strings.Join(cells, "\t") }

func list(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
