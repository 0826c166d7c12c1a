package deploy

import (
	"slices"
	"strings"
	"testing"
)

// metricNames returns the metric names a PromQL expression selects, in
// order of appearance: every identifier that is not a function or
// aggregation (followed by "(" or by/without), a keyword, a label name
// (inside {} or a by/on/... list), a duration or range ([...]), a number,
// a string or a Grafana variable ($name, ${name}). It does not validate
// the expression; a malformed one yields what it can.
func metricNames(expr string) []string {
	var names []string
	braces := 0
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			braces++
			i++
		case c == '}':
			braces = max(braces-1, 0)
			i++
		case c == '[':
			i = skipPast(expr, i, ']')
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				i = skipPast(expr, i, '}')
			} else {
				i = scanWord(expr, i)
			}
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			// Numbers and durations: 5m, 1e3, 0x1F, 1.5.
			i = scanWord(expr, i+1)
		case isIdentStart(c):
			end := scanWord(expr, i)
			word := expr[i:end]
			next := nextNonSpace(expr, end)
			switch {
			case braces > 0:
			case grouping[word]:
				if next < len(expr) && expr[next] == '(' {
					end = skipPast(expr, next, ')')
				}
			case keywords[word]:
			case next < len(expr) && expr[next] == '(':
				// A function or an aggregation with its argument.
			case aggregations[word]:
				// An aggregation followed by by/without.
			default:
				names = append(names, word)
			}
			i = end
		default:
			i++
		}
	}
	return names
}

// grouping are the keywords followed by a list of label names.
var grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "Inf": true, "nan": true, "NaN": true, "start": true, "end": true,
}

var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "group": true,
	"stddev": true, "stdvar": true, "topk": true, "bottomk": true, "quantile": true,
	"count_values": true, "limitk": true, "limit_ratio": true,
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// scanWord returns the end of the identifier-like run starting at i.
func scanWord(s string, i int) int {
	for i < len(s) && (isIdentStart(s[i]) || isDigit(s[i]) || s[i] == '.') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	quote := s[i]
	for i++; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quote != '`':
			i++
		case s[i] == quote:
			return i + 1
		}
	}
	return len(s)
}

// skipPast returns the index after the close byte matching s[i], skipping
// strings and nested pairs of s[i].
func skipPast(s string, i int, close byte) int {
	open, depth := s[i], 0
	for i < len(s) {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return len(s)
}

func nextNonSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`max by (tenant) (presence_bridge_breaker_state) == 2`, []string{"presence_bridge_breaker_state"}},
		{`sum without(instance)(rate(a_total{source=~"$source", x="y}z"}[$__rate_interval] offset 5m))`, []string{"a_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m])))`, []string{"h_bucket"}},
		{`a > bool 1 and on(tenant) group_left(instance) b unless c or absent(d)`, []string{"a", "b", "c", "d"}},
		{`time() - max(t{l="v"}) > 3.6e3`, []string{"t"}},
		{`sum by (tenant) (x) < 1 # comment naming y`, []string{"x"}},
		{`topk by (a) (3, m) + ${var} * $v + 'str' + 0x1F + Inf`, []string{"m"}},
		{`{__name__="hidden"}`, nil},
		{`(((`, nil},
		{`"unterminated`, nil},
	}
	for _, tt := range tests {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

func FuzzMetricNames(f *testing.F) {
	for _, seed := range []string{
		`sum by (tenant) (rate(presence_bridge_graph_requests_total{tenant=~"$tenant"}[$__rate_interval]))`,
		`a{b="c\"}"}[5m] offset 1h`, `${x`, `[`, `'`, "`", `by (`, `1.5e`, `$`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if len(expr) > 4096 {
			return
		}
		for _, name := range metricNames(expr) {
			if name == "" || !isIdentStart(name[0]) || !strings.Contains(expr, name) {
				t.Fatalf("metricNames(%q) returned %q", expr, name)
			}
		}
	})
}
