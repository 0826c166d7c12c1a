package emulator

import (
	"errors"
	"fmt"
	"strings"

	"github.com/presence-bridge/presence-bridge/graphclient/graphlimits"
)

var errFilterSyntax = errors.New("invalid filter clause")

// ParseIDFilter reads the OData $filter expressions the presence list
// accepts and returns the ids they name, in order: `id in ('a', 'b')`,
// `id eq 'a'`, and those joined with `or` (parentheses allowed). String
// literals are single-quoted, a quote inside doubled. Keywords are lower case,
// as in OData.
func ParseIDFilter(s string) ([]string, error) {
	toks, err := lexFilter(s)
	if err != nil {
		return nil, err
	}
	p := filterParser{toks: toks}
	ids, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("%w: unexpected %q", errFilterSyntax, p.toks[p.pos].text)
	}
	// A $filter names at most as many ids as getPresencesByUserId takes.
	if len(ids) > graphlimits.MaxIDsPerLookup {
		return nil, fmt.Errorf("%w: more than %d ids", errFilterSyntax, graphlimits.MaxIDsPerLookup)
	}
	return ids, nil
}

type filterToken struct {
	kind byte // 'w' word, 's' string literal, or the punctuation itself
	text string
}

func lexFilter(s string) ([]filterToken, error) {
	var toks []filterToken
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, filterToken{kind: c, text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("%w: unterminated string", errFilterSyntax)
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, filterToken{kind: 's', text: b.String()})
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			start := i
			for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9') {
				i++
			}
			toks = append(toks, filterToken{kind: 'w', text: s[start:i]})
		default:
			return nil, fmt.Errorf("%w: unexpected %q", errFilterSyntax, string(c))
		}
	}
	return toks, nil
}

// maxFilterDepth bounds nested parentheses.
const maxFilterDepth = 16

type filterParser struct {
	toks []filterToken
	pos  int
}

func (p *filterParser) peek() (filterToken, bool) {
	if p.pos >= len(p.toks) {
		return filterToken{}, false
	}
	return p.toks[p.pos], true
}

func (p *filterParser) expect(kind byte, text string) error {
	t, ok := p.peek()
	if !ok || t.kind != kind || (text != "" && t.text != text) {
		want := text
		if want == "" {
			want = string(kind)
		}
		return fmt.Errorf("%w: expected %q", errFilterSyntax, want)
	}
	p.pos++
	return nil
}

// or parses clause { "or" clause }.
func (p *filterParser) or(depth int) ([]string, error) {
	ids, err := p.clause(depth)
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || t.kind != 'w' || t.text != "or" {
			return ids, nil
		}
		p.pos++
		more, err := p.clause(depth)
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
	}
}

// clause parses "(" or ")" | id in (...) | id eq '...'.
func (p *filterParser) clause(depth int) ([]string, error) {
	if depth > maxFilterDepth {
		return nil, fmt.Errorf("%w: nested too deeply", errFilterSyntax)
	}
	t, ok := p.peek()
	if ok && t.kind == '(' {
		p.pos++
		ids, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		return ids, p.expect(')', "")
	}
	if err := p.expect('w', "id"); err != nil {
		return nil, err
	}
	op, ok := p.peek()
	if !ok || op.kind != 'w' {
		return nil, fmt.Errorf("%w: expected in or eq", errFilterSyntax)
	}
	p.pos++
	switch op.text {
	case "eq":
		lit, ok := p.peek()
		if !ok || lit.kind != 's' {
			return nil, fmt.Errorf("%w: expected a quoted id", errFilterSyntax)
		}
		p.pos++
		return []string{lit.text}, nil
	case "in":
		if err := p.expect('(', ""); err != nil {
			return nil, err
		}
		var ids []string
		for {
			lit, ok := p.peek()
			if !ok || lit.kind != 's' {
				return nil, fmt.Errorf("%w: expected a quoted id", errFilterSyntax)
			}
			p.pos++
			ids = append(ids, lit.text)
			sep, ok := p.peek()
			if ok && sep.kind == ',' {
				p.pos++
				continue
			}
			return ids, p.expect(')', "")
		}
	}
	return nil, fmt.Errorf("%w: unsupported operator %q", errFilterSyntax, op.text)
}

// selectFields reads $select against the properties of an entity type and
// returns the canonical names asked for; nil means all. Names match case-
// insensitively, as Graph's do; an unknown name is Graph's 400.
func selectFields(query, entity string, properties []string) ([]string, *apiError) {
	if strings.TrimSpace(query) == "" {
		return nil, nil
	}
	var out []string
	for _, name := range strings.Split(query, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := ""
		for _, p := range properties {
			if strings.EqualFold(p, name) {
				found = p
			}
		}
		if found == "" {
			return nil, badRequest("BadRequest", "Could not find a property named '%s' on type 'microsoft.graph.%s'.", name, entity)
		}
		out = append(out, found)
	}
	return out, nil
}

// project keeps the selected properties of full (all when selected is
// nil), plus the always-present ones.
func project(full map[string]any, selected []string, always ...string) map[string]any {
	if selected == nil {
		return full
	}
	out := make(map[string]any, len(selected)+len(always))
	for _, k := range always {
		if v, ok := full[k]; ok {
			out[k] = v
		}
	}
	for _, k := range selected {
		out[k] = full[k]
	}
	return out
}
