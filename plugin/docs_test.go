package main

import (
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	bgpconfig "github.com/ipvlan-bgp/ipvlan-bgp/bgp/config"
	"github.com/ipvlan-bgp/ipvlan-bgp/fib"
	"github.com/ipvlan-bgp/ipvlan-bgp/internal/testnet"
)

// The docs in docs/ are checked against the code, so they cannot drift:
// settings and options against config.json and the driver's source, error
// texts against the format strings that produce them, the TOML example
// against bgpconfig.Load, and quoted lab files against the files themselves.

var updateDocs = flag.Bool("update-docs", false, "rewrite the lab files quoted in docs/*.md (<!-- file: PATH --> blocks) from the files")

const (
	repoRoot  = ".."
	reference = "../docs/reference.md"
)

// TestReferenceSettings: every setting config.json declares is in the
// reference with config.json's default, the reference documents no other,
// and every BGP_* setting package bgp reads is declared in config.json.
func TestReferenceSettings(t *testing.T) {
	declared := map[string]string{}
	for _, e := range readManifest(t).Env {
		declared[e.Name] = e.Value
	}
	for name, env := range stringConsts(t, "../bgp/config/load.go", func(n string) bool { return strings.HasPrefix(n, "Env") }) {
		if _, ok := declared[env]; !ok {
			t.Errorf("bgpconfig.%s (%s) is read by the speaker but missing from config.json", name, env)
		}
	}
	documented := map[string]string{}
	for _, row := range tableRows(t, readDoc(t, reference), "setting") {
		name := singleCode(t, row, 0)
		def, ok := documentedDefault(row[1])
		if !ok {
			t.Errorf("reference.md: %s: the default cell %q is neither `VALUE` nor text starting with \"empty\"", name, row[1])
		}
		documented[name] = def
	}
	for name, def := range declared {
		got, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("reference.md does not document setting %s", name)
		case got != def:
			t.Errorf("reference.md: %s default %q, config.json %q", name, got, def)
		}
	}
	for name := range documented {
		if _, ok := declared[name]; !ok {
			t.Errorf("reference.md documents setting %s, which config.json does not declare", name)
		}
	}
}

// documentedDefault reads a default cell: `VALUE`, or text starting with
// "empty" that says what an empty value means.
func documentedDefault(cell string) (string, bool) {
	if strings.HasPrefix(cell, "empty") {
		return "", true
	}
	spans := codeSpans(cell)
	if len(spans) == 0 || !strings.HasPrefix(cell, "`") {
		return "", false
	}
	return spans[0], true
}

// TestReferenceOptions: the reference's option tables list exactly the
// option keys driver/options.go accepts: every opt* constant for -o, and
// those parseEndpointOptions accepts for --driver-opt.
func TestReferenceOptions(t *testing.T) {
	network := stringConsts(t, "../driver/options.go", func(n string) bool { return strings.HasPrefix(n, "opt") })
	if len(network) == 0 {
		t.Fatal("no opt* constants in driver/options.go: the test no longer matches how the driver names its options")
	}
	container := map[string]string{}
	for name := range identsIn(t, "../driver/options.go", "parseEndpointOptions") {
		if key, ok := network[name]; ok {
			container[name] = key
		}
	}
	if len(container) == 0 {
		t.Fatal("parseEndpointOptions refers to no opt* constant: the test no longer matches the driver")
	}
	doc := readDoc(t, reference)
	for _, tt := range []struct {
		header string
		keys   map[string]string
	}{{"network option", network}, {"container option", container}} {
		var documented []string
		for _, row := range tableRows(t, doc, tt.header) {
			documented = append(documented, singleCode(t, row, 0))
		}
		for name, key := range tt.keys {
			if !slices.Contains(documented, key) {
				t.Errorf("reference.md: the %q table lacks %s (driver constant %s)", tt.header, key, name)
			}
		}
		for _, key := range documented {
			if !mapHasValue(tt.keys, key) {
				t.Errorf("reference.md: the %q table documents %s, which the driver does not accept", tt.header, key)
			}
		}
	}
}

func mapHasValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}

// errorWrappers are the error types' formats around a reason, as regular
// expressions capturing the reason: badvalue.Error of the driver's options,
// of the plugin's settings and of the BGP settings, and ipam.Error.
var errorWrappers = []*regexp.Regexp{
	regexp.MustCompile(`^ipvlan-bgp: option [^=]+="(?:[^"\\]|\\.)*": (.+)$`),
	regexp.MustCompile(`^setting [A-Z0-9_]+="(?:[^"\\]|\\.)*": (.+)$`),
	regexp.MustCompile(`^.+?="(?:[^"\\]|\\.)*": (.+)$`),
	regexp.MustCompile(`^[a-zA-Z -]+ "(?:[^"\\]|\\.)*": (.+)$`),
}

// TestDocumentedErrorsExist: every error text the docs quote in an "error"
// table is one the code can produce: its reason matches a format string of
// the packages that answer Docker and read the settings.
func TestDocumentedErrorsExist(t *testing.T) {
	var formats []*regexp.Regexp
	for _, dir := range []string{"../driver", "../ipam", "../internal/route", "../bgp", "../bgp/config", "."} {
		formats = append(formats, formatPatterns(t, dir)...)
	}
	checked := 0
	for _, doc := range docFiles(t) {
		for _, row := range rowsUnder(readDoc(t, doc), "error") {
			text := singleCode(t, row, 0)
			checked++
			if !producible(text, formats) {
				t.Errorf("%s: no format string in the code produces the documented error %q", filepath.Base(doc), text)
			}
		}
	}
	if checked == 0 {
		t.Fatal("the docs quote no error in an \"error\" table")
	}
}

func producible(text string, formats []*regexp.Regexp) bool {
	reasons := []string{text}
	for _, w := range errorWrappers {
		if m := w.FindStringSubmatch(text); m != nil {
			reasons = append(reasons, m[1])
		}
	}
	for _, r := range reasons {
		for _, f := range formats {
			if f.MatchString(r) {
				return true
			}
		}
	}
	return false
}

// formatPatterns turns every string literal (and every + of literals) in
// the non-test Go files of dir into an anchored pattern where each fmt verb
// matches any text. Left out, as they would match any error: literals with
// fewer than 8 letters besides their verbs ("%s: %w"), and the error types'
// own formats around a reason ("ipvlan-bgp: option %s=%q: %s"), whose
// reason errorWrappers takes apart instead.
func formatPatterns(t *testing.T, dir string) []*regexp.Regexp {
	t.Helper()
	var out []*regexp.Regexp
	for _, file := range goFiles(t, dir) {
		ast.Inspect(file, func(n ast.Node) bool {
			expr, ok := n.(ast.Expr)
			if !ok {
				return true
			}
			if s, ok := foldString(expr); ok {
				if p := formatPattern(s); p != nil {
					out = append(out, p)
				}
			}
			return true
		})
	}
	return out
}

// foldString evaluates a string literal or a sum of them.
func foldString(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		x, ok := foldString(e.X)
		y, ok2 := foldString(e.Y)
		return x + y, ok && ok2
	case *ast.ParenExpr:
		return foldString(e.X)
	}
	return "", false
}

var fmtVerb = regexp.MustCompile(`%[-+# 0]*[0-9]*(?:\.[0-9]+)?[a-zA-Z%]`)

var reasonWrapper = regexp.MustCompile(`%q: %[sv]$`)

func formatPattern(format string) *regexp.Regexp {
	if reasonWrapper.MatchString(format) {
		return nil
	}
	letters := 0
	for _, r := range fmtVerb.ReplaceAllString(format, "") {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			letters++
		}
	}
	if letters < 8 {
		return nil
	}
	var b strings.Builder
	b.WriteString("^")
	last := 0
	for _, loc := range fmtVerb.FindAllStringIndex(format, -1) {
		b.WriteString(regexp.QuoteMeta(format[last:loc[0]]))
		switch verb := format[loc[1]-1]; verb {
		case '%':
			b.WriteString("%")
		case 'd':
			b.WriteString(`-?[0-9]+`)
		default:
			b.WriteString(`.*`)
		}
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(format[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

var metricName = regexp.MustCompile(`ipvlan_bgp_[a-z0-9_]+`)

// TestDocsMetricNames: every ipvlan_bgp_* name the docs use is a metric
// package metrics defines (a histogram's _count, _sum and _bucket too).
func TestDocsMetricNames(t *testing.T) {
	defined := map[string]bool{}
	for _, file := range goFiles(t, "../metrics") {
		ast.Inspect(file, func(n ast.Node) bool {
			if e, ok := n.(ast.Expr); ok {
				if s, ok := foldString(e); ok {
					defined["ipvlan_bgp_"+s] = true
				}
			}
			return true
		})
	}
	used := 0
	for _, doc := range docFiles(t) {
		for _, name := range metricName.FindAllString(readDoc(t, doc), -1) {
			used++
			base := name
			for _, suffix := range []string{"_count", "_sum", "_bucket"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && defined[trimmed] {
					base = trimmed
				}
			}
			if !defined[base] {
				t.Errorf("%s: %s is not a metric package metrics defines", filepath.Base(doc), name)
			}
		}
	}
	if used == 0 {
		t.Fatal("the docs name no metric")
	}
}

var kernelRouteMark = regexp.MustCompile(`\b(proto|protocol|metric) ([0-9]+)\b`)

// TestDocsKernelRouteMarks: the route protocol and metric the docs tell
// operators to look for are fib's.
func TestDocsKernelRouteMarks(t *testing.T) {
	want := map[string]string{
		"proto": strconv.Itoa(int(fib.Protocol)), "protocol": strconv.Itoa(int(fib.Protocol)),
		"metric": strconv.Itoa(fib.Metric),
	}
	seen := 0
	for _, doc := range docFiles(t) {
		for _, m := range kernelRouteMark.FindAllStringSubmatch(readDoc(t, doc), -1) {
			seen++
			if m[2] != want[m[1]] {
				t.Errorf("%s: %q, but fib uses %s %s", filepath.Base(doc), m[0], m[1], want[m[1]])
			}
		}
	}
	if seen == 0 {
		t.Fatal("the docs name neither the route protocol nor the metric")
	}
}

// TestReferenceTOMLExamples loads every ```toml block of the reference with
// bgpconfig.Load as the managed plugin would: config.json's defaults in the
// environment and BGP_CONFIG_FILE naming the block. Every section of the
// block must make it into the configuration.
func TestReferenceTOMLExamples(t *testing.T) {
	env := map[string]string{}
	for _, e := range readManifest(t).Env {
		env[e.Name] = e.Value
	}
	blocks := 0
	for _, b := range fencedBlocks(readDoc(t, reference)) {
		if b.info != "toml" {
			continue
		}
		blocks++
		body := provideInterfaces(t, b.body)
		path := filepath.Join(t.TempDir(), "bgp.toml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		env[bgpconfig.EnvConfigFile] = path
		cfg, err := bgpconfig.Load(func(k string) string { return env[k] })
		if err != nil {
			t.Errorf("reference.md line %d: the TOML example does not load: %v", b.line, err)
			continue
		}
		for _, s := range []struct {
			section string
			loaded  int
		}{{"[[peer-group]]", len(cfg.PeerGroups)}, {"[[neighbor]]", len(cfg.Neighbors)}, {"[[dynamic-neighbor]]", len(cfg.DynamicNeighbors)}} {
			if want := strings.Count(body, "\n"+s.section); want != s.loaded {
				t.Errorf("reference.md line %d: the example has %d %s, the loaded configuration %d", b.line, want, s.section, s.loaded)
			}
		}
	}
	if blocks == 0 {
		t.Fatal("reference.md has no ```toml example")
	}
}

var interfaceKey = regexp.MustCompile(`(?m)^(interface\s*=\s*)"([^"]+)"`)

// provideInterfaces makes the interfaces an example's unnumbered neighbours
// name exist, since the loader checks them: as root (the test runs in a
// throwaway namespace) it creates each as a veth; otherwise it points the
// neighbour at lo, which checks everything but the name.
func provideInterfaces(t *testing.T, body string) string {
	t.Helper()
	for i, m := range interfaceKey.FindAllStringSubmatch(body, -1) {
		name := m[2]
		if _, err := net.InterfaceByName(name); err == nil {
			continue
		}
		if os.Geteuid() == 0 {
			testnet.Veth(t, testnet.Host, name, testnet.Host, "docpeer"+strconv.Itoa(i))
			continue
		}
		t.Logf("not root: the example's interface %s is checked as lo", name)
		body = strings.ReplaceAll(body, m[0], m[1]+`"lo"`)
	}
	return body
}

// TestDocsQuoteLabFiles: a block after <!-- file: PATH --> is PATH byte for
// byte (-update-docs rewrites it), every line of a block after
// <!-- excerpt: PATH --> is a line of PATH, the headings of a block after
// <!-- headers: PATH.go --> are printed by PATH.go, and the first column of
// a "line" table holds fragments of the file quoted last before it.
func TestDocsQuoteLabFiles(t *testing.T) {
	quoted := 0
	for _, doc := range docFiles(t) {
		text := readDoc(t, doc)
		blocks := fencedBlocks(text)
		for i := len(blocks) - 1; i >= 0; i-- { // from the end, so rewrites keep offsets
			b := blocks[i]
			kind, path := b.marker()
			if kind == "" {
				continue
			}
			quoted++
			file := readDoc(t, filepath.Join(repoRoot, path))
			if kind == "file" && b.body != file {
				if *updateDocs {
					text = text[:b.start] + file + text[b.end:]
					continue
				}
				t.Errorf("%s line %d: the block differs from %s (go test ./plugin -run TestDocsQuoteLabFiles -update-docs rewrites it)", filepath.Base(doc), b.line, path)
			}
			switch kind {
			case "excerpt":
				checkExcerpt(t, doc, b, path, file)
			case "headers":
				checkHeaders(t, doc, b, path)
			}
		}
		checkLineTables(t, doc, text, blocks)
		if *updateDocs {
			if err := os.WriteFile(doc, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if quoted == 0 {
		t.Fatal("no doc quotes a lab file")
	}
}

func checkExcerpt(t *testing.T, doc string, b block, path, file string) {
	t.Helper()
	lines := strings.Split(file, "\n")
	for _, l := range strings.Split(strings.TrimSuffix(b.body, "\n"), "\n") {
		if !slices.Contains(lines, l) {
			t.Errorf("%s line %d: %q is not a line of %s", filepath.Base(doc), b.line, l, path)
		}
	}
}

// checkHeaders checks the headings of a block showing a program's tables
// (lines without lower-case letters, such as "PEERS" or "PEER  INTERFACE
// REMOTE AS ..."): each must be a string literal of the Go file that prints
// them, tabs and runs of spaces read as one space.
func checkHeaders(t *testing.T, doc string, b block, path string) {
	t.Helper()
	literals := map[string]bool{}
	ast.Inspect(parseGo(t, filepath.Join(repoRoot, path)), func(n ast.Node) bool {
		if e, ok := n.(ast.Expr); ok {
			if s, ok := foldString(e); ok {
				literals[collapseSpace(s)] = true
			}
		}
		return true
	})
	headings := 0
	for _, l := range strings.Split(b.body, "\n") {
		if l = collapseSpace(l); l == "" || strings.ToUpper(l) != l {
			continue
		}
		headings++
		if !literals[l] {
			t.Errorf("%s line %d: the heading %q is not printed by %s", filepath.Base(doc), b.line, l, path)
		}
	}
	if headings == 0 {
		t.Errorf("%s line %d: a headers block without a heading", filepath.Base(doc), b.line)
	}
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

// checkLineTables checks each "line" table against the file quoted last
// before it.
func checkLineTables(t *testing.T, doc, text string, blocks []block) {
	t.Helper()
	for _, tab := range tables(text) {
		if tab.header != "line" {
			continue
		}
		path := ""
		for _, b := range blocks {
			if _, p := b.marker(); p != "" && b.line < tab.line {
				path = p
			}
		}
		if path == "" {
			t.Errorf("%s line %d: a \"line\" table with no quoted file before it", filepath.Base(doc), tab.line)
			continue
		}
		file := readDoc(t, filepath.Join(repoRoot, path))
		for _, row := range tab.rows {
			for _, fragment := range codeSpans(row[0]) {
				if !strings.Contains(file, fragment) {
					t.Errorf("%s line %d: %q is not in %s", filepath.Base(doc), tab.line, fragment, path)
				}
			}
		}
	}
}

// ---- The same fact in two places ----
//
// A setting's default, a log field's name and a lab host's addressing are
// stated in the README, in docs/ and in config.json; the tests below keep
// every statement of one fact equal to the others and to the code or the
// lab's files.

const readme = "../README.md"

// emptyMeaning is what config.json's description says an empty value of a
// setting means: the text after "Empty: ", without the final period.
func emptyMeaning(description string) (string, bool) {
	_, after, ok := strings.Cut(description, "Empty: ")
	return strings.TrimSuffix(strings.TrimSpace(after), "."), ok
}

// normText compares prose: no backticks, one space, lower case, no final
// period.
func normText(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	return strings.TrimSuffix(strings.ToLower(collapseSpace(s)), ".")
}

// TestSettingEmptyMeanings: a setting whose config.json default is empty
// says in its description what empty means ("Empty: ..."), and the
// reference's default cell says the same ("empty: ..." and then, at most,
// more words).
func TestSettingEmptyMeanings(t *testing.T) {
	cells := map[string]string{}
	for _, row := range tableRows(t, readDoc(t, reference), "setting") {
		cells[singleCode(t, row, 0)] = row[1]
	}
	for _, e := range readManifest(t).Env {
		meaning, ok := emptyMeaning(e.Description)
		switch {
		case e.Value != "" && ok:
			t.Errorf("config.json %s: the default is %q, yet the description says what empty means", e.Name, e.Value)
		case e.Value != "":
		case !ok:
			t.Errorf("config.json %s: an empty default, and the description does not say what it means (\"Empty: ...\")", e.Name)
		default:
			cell, _ := strings.CutPrefix(normText(cells[e.Name]), "empty: ")
			if !strings.HasPrefix(cell, normText(meaning)) {
				t.Errorf("%s empty means %q in config.json, but reference.md says %q", e.Name, meaning, cells[e.Name])
			}
		}
	}
}

// TestReadmeSettings: the README's settings table lists every setting of
// config.json, and each default it gives is config.json's: the value in a
// code span, or, for an empty one, config.json's "Empty: ..." meaning in
// words, or the value that meaning ends with ("else `179`").
func TestReadmeSettings(t *testing.T) {
	env := map[string]manifestEnv{}
	for _, e := range readManifest(t).Env {
		env[e.Name] = manifestEnv{e.Value, e.Description}
	}
	listed := map[string]bool{}
	for _, row := range tableRows(t, readDoc(t, readme), "setting") {
		names := codeSpans(row[0])
		defaults := strings.Split(row[1], " / ")
		if len(names) != len(defaults) {
			t.Errorf("README: the row of %v gives %d defaults (%q) for %d settings; separate them with \" / \"", names, len(defaults), row[1], len(names))
			continue
		}
		for i, name := range names {
			listed[name] = true
			e, ok := env[name]
			if !ok {
				t.Errorf("README documents setting %s, which config.json does not declare", name)
				continue
			}
			def := strings.TrimSpace(defaults[i])
			spans := codeSpans(def)
			if e.value != "" {
				if len(spans) == 0 || spans[0] != e.value {
					t.Errorf("README: %s default %q, config.json %q", name, def, e.value)
				}
				continue
			}
			meaning, _ := emptyMeaning(e.description)
			single := len(spans) == 1 && def == "`"+spans[0]+"`"
			if normText(def) != normText(meaning) && !(single && strings.HasSuffix(normText(meaning), "else "+strings.ToLower(spans[0]))) {
				t.Errorf("README: %s default %q; config.json: empty means %q (say that, or the value it ends with)", name, def, meaning)
			}
		}
	}
	for name := range env {
		if !listed[name] {
			t.Errorf("README's settings table lacks %s", name)
		}
	}
}

type manifestEnv struct{ value, description string }

// TestReadmeNetworkOptions: the README's network option table lists the
// options the driver accepts, each with the reference's default.
func TestReadmeNetworkOptions(t *testing.T) {
	refDefaults := map[string]string{}
	for _, row := range tableRows(t, readDoc(t, reference), "network option") {
		refDefaults[singleCode(t, row, 0)] = row[2]
	}
	listed := map[string]bool{}
	for _, row := range tableRows(t, readDoc(t, readme), "option") {
		name := singleCode(t, row, 0)
		listed[name] = true
		ref, ok := refDefaults[name]
		if !ok {
			t.Errorf("README documents network option %s, which reference.md does not", name)
			continue
		}
		if a, b := codeSpans(row[2]), codeSpans(ref); !slices.Equal(a, b) {
			t.Errorf("README: option %s default %q, reference.md %q", name, row[2], ref)
		}
	}
	for name := range refDefaults {
		if !listed[name] {
			t.Errorf("README's option table lacks %s", name)
		}
	}
}

// logKeys returns the field names the plugin's log lines can carry: the
// keys its code gives logrus (WithField's first argument, the keys of a
// Fields literal, a key set on a Fields map), GoBGP's own keys as
// bgp/gobgplog.go passes them on (gobgpFields, less those it deletes, plus
// those it sets), and logrus' and dockerd's.
func logKeys(t *testing.T) map[string]bool {
	t.Helper()
	keys := map[string]bool{"time": true, "level": true, "msg": true, "error": true, "plugin": true}
	for _, k := range gobgpFields {
		keys[gobgpFieldName(k)] = true
	}
	for _, dir := range []string{"../driver", "../ipam", "../bgp", "../fib", "../store", "../api", "../metrics", "../status", "../internal/route", "../internal/logs", "../internal/observe", "."} {
		for _, file := range goFiles(t, dir) {
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					name := ""
					switch f := n.Fun.(type) {
					case *ast.SelectorExpr:
						name = f.Sel.Name
					case *ast.Ident:
						name = f.Name
					}
					if len(n.Args) == 0 {
						return true
					}
					if s, ok := foldString(n.Args[len(n.Args)-1]); ok && name == "delete" {
						delete(keys, s)
					} else if s, ok := foldString(n.Args[0]); ok && name == "WithField" {
						keys[s] = true
					} else if name == "WithField" && isFieldConst(n.Args[0], "Component") {
						keys["component"] = true // internal/logs.For's field
					}
				case *ast.CompositeLit:
					if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Fields" {
						for _, elt := range n.Elts {
							if kv, ok := elt.(*ast.KeyValueExpr); ok {
								if s, ok := foldString(kv.Key); ok {
									keys[s] = true
								}
							}
						}
					}
				case *ast.AssignStmt:
					for _, lhs := range n.Lhs {
						if ix, ok := lhs.(*ast.IndexExpr); ok {
							if s, ok := foldString(ix.Index); ok {
								keys[s] = true
							}
						}
					}
				}
				return true
			})
		}
	}
	return keys
}

// isFieldConst reports whether e names the constant name (Component, or
// logs.Component), whose value TestLogsComponentConst checks.
func isFieldConst(e ast.Expr, name string) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name == name
	case *ast.SelectorExpr:
		return e.Sel.Name == name
	}
	return false
}

// gobgpFields are the keys GoBGP's own log lines carry (its Peer Up, Peer
// Down and configuration lines).
var gobgpFields = []string{"Topic", "Key", "Peer", "Prefix", "State", "reason", "Err", "Error", "Data", "adminState", "Family", "Asn", "OldState", "NewState"}

// gobgpFieldName is a GoBGP key as bgp/gobgplog.go logs it: Key and Peer
// become peer, Err and Error logrus' error, the others lower-cased.
func gobgpFieldName(k string) string {
	switch k {
	case "Key", "Peer":
		return "peer"
	case "Err", "Error":
		return "error"
	}
	return strings.ToLower(k)
}

var (
	fieldMention = regexp.MustCompile("\\bfields? \\(?((?:`[^`]+`(?: = [a-z ]+)?(?:, and |, | and |, or | or )?)+)")
	logLine      = regexp.MustCompile(`(?:^|\s)([a-zA-Z_]+)=`)
)

// TestDocsLogFields: a field the docs name ("fields `network`, `peer`", a
// sample log line's key=value or JSON key) is one the plugin's log lines
// carry.
func TestDocsLogFields(t *testing.T) {
	keys := logKeys(t)
	checked := 0
	for _, doc := range append(docFiles(t), readme) {
		text := readDoc(t, doc)
		for _, m := range fieldMention.FindAllStringSubmatch(text, -1) {
			for _, name := range codeSpans(m[1]) {
				name, _, _ = strings.Cut(name, "=")
				checked++
				if !keys[name] {
					t.Errorf("%s: %q names log field %q, which no log line of the plugin carries", filepath.Base(doc), m[0], name)
				}
			}
		}
		for _, b := range fencedBlocks(text) {
			if b.comment != "<!-- log -->" {
				continue
			}
			for _, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
				var names []string
				if strings.HasPrefix(line, "{") {
					var obj map[string]any
					if err := json.Unmarshal([]byte(line), &obj); err != nil {
						t.Errorf("%s line %d: a JSON log line that does not parse: %v", filepath.Base(doc), b.line, err)
						continue
					}
					for k := range obj {
						names = append(names, k)
					}
				} else {
					for _, m := range logLine.FindAllStringSubmatch(unwrapDockerd(line), -1) {
						names = append(names, m[1])
					}
				}
				for _, name := range names {
					checked++
					if !keys[name] {
						t.Errorf("%s line %d: the sample log line has field %q, which no log line of the plugin carries: %s", filepath.Base(doc), b.line, name, line)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("the docs name no log field")
	}
}

// unwrapDockerd turns dockerd's line around a plugin's (`time=... msg="time=\"...\" level=info msg=\"...\" peer=..." plugin=ID`)
// into the plugin's own line with dockerd's keys beside it.
func unwrapDockerd(line string) string {
	return strings.ReplaceAll(line, `\"`, `"`)
}

// labHosts reads fabric.sh: each host's settings (hostN_settings) and the
// addresses of every box's interfaces, with the networks of the links.
type labFabric struct {
	settings  map[string]map[string]string // host -> setting -> value
	addresses map[netip.Addr]string        // address -> box
	networks  map[netip.Prefix]bool
	hostNets  []netip.Prefix // the ranges the hosts' links are numbered from
}

var (
	settingsFunc = regexp.MustCompile(`(?m)^(host[0-9]+)_settings\(\) \{ echo (.*); \}$`)
	fabricLink   = regexp.MustCompile(`(?m)^\s*fabric_link (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)`)
	addrAdd      = regexp.MustCompile(`ip -n (\S+) addr add ([0-9a-f.:]+/[0-9]+) dev`)
	frrAddress   = regexp.MustCompile(`(?m)^ ip address ([0-9.]+)/32`)
)

func readLabFabric(t *testing.T) labFabric {
	t.Helper()
	fab := labFabric{settings: map[string]map[string]string{}, addresses: map[netip.Addr]string{}, networks: map[netip.Prefix]bool{}}
	text := readDoc(t, filepath.Join(repoRoot, "integration/lab/scenarios/fabric.sh"))
	for _, m := range settingsFunc.FindAllStringSubmatch(text, -1) {
		fab.settings[m[1]] = map[string]string{}
		for _, kv := range strings.Fields(m[2]) {
			k, v, _ := strings.Cut(kv, "=")
			fab.settings[m[1]][k] = v
		}
	}
	if len(fab.settings) < 4 {
		t.Fatalf("fabric.sh: found the settings of %d hosts (hostN_settings), want 4", len(fab.settings))
	}
	add := func(box, cidr string) {
		if cidr == "-" || strings.Contains(cidr, "$") {
			return
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("fabric.sh: %q: %v", cidr, err)
		}
		fab.addresses[p.Addr()] = box
		fab.networks[p.Masked()] = true
	}
	for _, m := range fabricLink.FindAllStringSubmatch(text, -1) {
		add(m[1], m[3])
		add(m[1], m[4])
		add(m[5], m[7])
		add(m[5], m[8])
	}
	for _, m := range addrAdd.FindAllStringSubmatch(text, -1) {
		add(m[1], m[2])
	}
	confs, _ := filepath.Glob(filepath.Join(repoRoot, "integration/lab/fabric/*.frr.conf"))
	for _, c := range confs {
		for _, m := range frrAddress.FindAllStringSubmatch(readDoc(t, c), -1) {
			add(strings.SplitN(filepath.Base(c), ".", 2)[0], m[1]+"/32")
		}
	}
	// The ranges a host's link is numbered from: 10.0.N.0/24 and
	// fd00:0:N::/48 of its links (host1's IPv4 included, though only its
	// loopback holds one).
	for a, box := range fab.addresses {
		if !strings.HasPrefix(box, "host") {
			continue
		}
		bits := 24
		if a.Is6() {
			bits = 48
		}
		p, _ := a.Prefix(bits)
		if !slices.Contains(fab.hostNets, p) {
			fab.hostNets = append(fab.hostNets, p)
		}
	}
	return fab
}

var (
	confNeighbor = regexp.MustCompile(`(?m)(?:^ neighbor |neighbor |^ bgp listen range )([0-9a-zA-Z.:]+)`)
	birdBGP      = regexp.MustCompile(`(?m)^protocol bgp ([a-z0-9_]+)`)
)

var docAddress = regexp.MustCompile(`\b(?:10\.[0-9]+\.[0-9]+\.[0-9]+(?:/[0-9]+)?|fd00:0:[0-9a-f]+::[0-9a-f:]*(?:/[0-9]+)?)`)

// parseDocAddress reads an address or prefix as the docs write it, also
// inside ADDRESS:AS ("fd00:0:2::1:65132").
func parseDocAddress(s string) (netip.Prefix, bool) {
	s = strings.TrimRight(s, ":")
	for range 2 {
		if p, err := netip.ParsePrefix(s); err == nil {
			return p, true
		}
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.PrefixFrom(a, a.BitLen()), true
		}
		i := strings.LastIndex(s, ":")
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return netip.Prefix{}, false
}

// TestDocsLabAddressing: the docs' lab addresses are the lab's. An address
// (or /31, /64) in the range a lab host's links are numbered from is an
// address of the fabric or the network of one of its links; a set of
// settings naming a lab host's BGP_ASN gives that host's router ID,
// neighbours and blocks (fabric.sh's hostN_settings); `vtysh ...
// neighbors X` names a neighbour of a lab leaf, `birdc ... protocol X` a
// protocol of the BIRD leaf, and `$G neighbor X` (the gobgp CLI on a host) a
// neighbour of a lab host.
func TestDocsLabAddressing(t *testing.T) {
	fab := readLabFabric(t)
	hostOfASN := map[string]string{}
	hostNeighbors := map[string]bool{}
	for h, set := range fab.settings {
		hostOfASN[set["BGP_ASN"]] = h
		for _, n := range strings.Split(set["BGP_NEIGHBORS"], ",") {
			if p, ok := parseDocAddress(n); ok {
				hostNeighbors[p.Addr().String()] = true
			}
		}
	}
	leafNeighbors := map[string]bool{} // the neighbours of the lab's FRR and BIRD boxes
	birdProtocols := map[string]bool{}
	confs, _ := filepath.Glob(filepath.Join(repoRoot, "integration/lab/fabric/*.conf"))
	for _, c := range confs {
		text := readDoc(t, c)
		for _, m := range confNeighbor.FindAllStringSubmatch(text, -1) {
			if _, err := netip.ParseAddr(m[1]); err == nil || strings.HasPrefix(m[1], "swp") {
				leafNeighbors[m[1]] = true
			}
		}
		for _, m := range birdBGP.FindAllStringSubmatch(text, -1) {
			birdProtocols[m[1]] = true
		}
	}
	vtyNeighbor := regexp.MustCompile(`vtysh .*?\bneighbors? ([0-9a-fA-Z.:]+|swp[0-9]+)`)
	birdProtocol := regexp.MustCompile(`birdc .*?\bprotocols? (?:all )?([a-z0-9_]+)`)
	gobgpNeighbor := regexp.MustCompile(`\$G neighbor ([0-9a-f.:]+)`)
	settingsSet := regexp.MustCompile(`BGP_ASN=([0-9]+)`)
	checked := 0
	for _, doc := range append(docFiles(t), readme) {
		base := filepath.Base(doc)
		for i, line := range strings.Split(readDoc(t, doc), "\n") {
			where := base + " line " + strconv.Itoa(i+1)
			for _, m := range docAddress.FindAllString(line, -1) {
				p, ok := parseDocAddress(m)
				if !ok || !slices.ContainsFunc(fab.hostNets, func(n netip.Prefix) bool { return n.Contains(p.Addr()) }) {
					continue
				}
				checked++
				_, isAddr := fab.addresses[p.Addr()]
				if !(p.IsSingleIP() && isAddr) && !fab.networks[p] && !(isAddr && fab.networks[p.Masked()]) {
					t.Errorf("%s: %s is no address or link of the lab's fabric (fabric.sh)", where, m)
				}
			}
			if m := settingsSet.FindStringSubmatch(line); m != nil {
				if h, ok := hostOfASN[m[1]]; ok {
					for _, kv := range strings.Fields(strings.NewReplacer("`", " ", "\"", " ", "\\", " ").Replace(line)) {
						k, v, ok := strings.Cut(kv, "=")
						if want, lab := fab.settings[h][k]; ok && lab {
							checked++
							if v != want {
								t.Errorf("%s: BGP_ASN=%s is %s's AS, whose %s is %s in fabric.sh, not %s", where, m[1], h, k, want, v)
							}
						}
					}
				}
			}
			for _, m := range vtyNeighbor.FindAllStringSubmatch(line, -1) {
				checked++
				if !leafNeighbors[m[1]] {
					t.Errorf("%s: %q: no lab leaf has neighbour %s", where, m[0], m[1])
				}
			}
			for _, m := range birdProtocol.FindAllStringSubmatch(line, -1) {
				checked++
				if !birdProtocols[m[1]] {
					t.Errorf("%s: %q: the BIRD leaf has no protocol %s", where, m[0], m[1])
				}
			}
			for _, m := range gobgpNeighbor.FindAllStringSubmatch(line, -1) {
				checked++
				if !hostNeighbors[m[1]] {
					t.Errorf("%s: %q: no lab host has neighbour %s", where, m[0], m[1])
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("the docs state no lab address")
	}
}

// ---- Markdown, just enough of it ----

type block struct {
	info       string // the fence's language
	body       string // between the fences, with its final newline
	start, end int    // byte offsets of body in the document
	line       int    // line of the opening fence
	comment    string // the line before the fence, when it is an HTML comment
}

var markerComment = regexp.MustCompile(`^<!-- (file|excerpt|headers): (\S+) -->$`)

// marker returns the block's quoting marker: "file", "excerpt" or
// "headers" and the path, or "" when the block quotes no file.
func (b block) marker() (kind, path string) {
	m := markerComment.FindStringSubmatch(b.comment)
	if m == nil {
		return "", ""
	}
	return m[1], m[2]
}

func fencedBlocks(text string) []block {
	var out []block
	var open *block
	prev, offset := "", 0
	for i, line := range strings.SplitAfter(text, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		switch {
		case open == nil && strings.HasPrefix(trimmed, "```"):
			open = &block{info: strings.TrimPrefix(trimmed, "```"), start: offset + len(line), line: i + 1}
			if strings.HasPrefix(prev, "<!--") {
				open.comment = prev
			}
		case open != nil && trimmed == "```":
			open.end = offset
			open.body = text[open.start:open.end]
			out = append(out, *open)
			open = nil
		}
		if trimmed != "" {
			prev = trimmed
		}
		offset += len(line)
	}
	return out
}

type table struct {
	header string // the first header cell
	rows   [][]string
	line   int
}

// tables returns the document's pipe tables outside code blocks.
func tables(text string) []table {
	var out []table
	var cur *table
	inCode := false
	for i, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := splitRow(line)
		switch {
		case cur == nil:
			out = append(out, table{header: cells[0], line: i + 1})
			cur = &out[len(out)-1]
		case strings.Trim(line, "|-: ") == "":
		default:
			cur.rows = append(cur.rows, cells)
		}
	}
	return out
}

func splitRow(line string) []string {
	cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
	for i := range cells {
		cells[i] = strings.TrimSpace(cells[i])
	}
	return cells
}

// tableRows returns the rows of every table whose first header cell is
// header; a document without one fails the test.
func tableRows(t *testing.T, text, header string) [][]string {
	t.Helper()
	rows := rowsUnder(text, header)
	if len(rows) == 0 {
		t.Fatalf("no table with the header %q, or only empty ones", header)
	}
	return rows
}

func rowsUnder(text, header string) [][]string {
	var rows [][]string
	for _, tab := range tables(text) {
		if tab.header == header {
			rows = append(rows, tab.rows...)
		}
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

func codeSpans(cell string) []string {
	var out []string
	for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// singleCode returns a cell that must be exactly one code span.
func singleCode(t *testing.T, row []string, i int) string {
	t.Helper()
	spans := codeSpans(row[i])
	if len(spans) != 1 || row[i] != "`"+spans[0]+"`" {
		t.Errorf("row %q: cell %d should be one `code` span", row, i)
		return row[i]
	}
	return spans[0]
}

// ---- Go source ----

func goFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*ast.File
	fset := token.NewFileSet()
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	return out
}

func parseGo(t *testing.T, path string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// stringConsts returns the string constants of a file whose names keep
// accepts, name to value.
func stringConsts(t *testing.T, path string, keep func(string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, decl := range parseGo(t, path).Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) || !keep(name.Name) {
					continue
				}
				if s, ok := foldString(vs.Values[i]); ok {
					out[name.Name] = s
				}
			}
		}
	}
	return out
}

// identsIn returns the identifiers used in the body of function fn.
func identsIn(t *testing.T, path, fn string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, decl := range parseGo(t, path).Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Name.Name != fn || fd.Body == nil {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				out[id.Name] = true
			}
			return true
		})
	}
	if len(out) == 0 {
		t.Fatalf("%s: no function %s", path, fn)
	}
	return out
}

func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	return docs
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsSwarmPage: docs/swarm.md quotes whole the Swarm commands and the
// Compose file the lab's scenarios run (TestDocsQuoteLabFiles compares each
// with its file), and every error its "limit" table shows is one the swarm
// scenario got from Docker and checks for.
func TestDocsSwarmPage(t *testing.T) {
	doc := readDoc(t, "../docs/swarm.md")
	quoted := map[string]bool{}
	for _, b := range fencedBlocks(doc) {
		if kind, path := b.marker(); kind == "file" {
			quoted[path] = true
		}
	}
	for _, path := range []string{
		"integration/lab/scenarios/swarm/node.sh",
		"integration/lab/scenarios/swarm/manager.sh",
		"integration/lab/scenarios/compose/compose.yaml",
	} {
		if !quoted[path] {
			t.Errorf("swarm.md does not quote %s whole (<!-- file: %s --> before a block)", path, path)
		}
	}
	scenario := readDoc(t, "../integration/lab/scenarios/scenario-swarm.sh")
	for _, row := range tableRows(t, doc, "limit") {
		answers := codeSpans(row[len(row)-1])
		if len(answers) == 0 {
			t.Errorf("swarm.md: the limit %q shows no error in its last column", row[0])
		}
		for _, a := range answers {
			if !strings.Contains(scenario, a) {
				t.Errorf("swarm.md: %q is not an error scenario-swarm.sh checks Docker for", a)
			}
		}
	}
}
