package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestExampleDocumentsEveryKey walks the configuration's types and checks
// that config.example.yaml shows every key: set at its path, or, for the
// alternatives one does not set together (client_secret_file, the
// emulator's per-user keys), written in a comment as "key:".
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	collectKeyPaths(&root, "", set)
	commented := map[string]bool{}
	key := regexp.MustCompile(`\b([a-z][a-z0-9_]*):`)
	for _, line := range strings.Split(string(data), "\n") {
		if _, comment, ok := strings.Cut(line, "#"); ok {
			for _, m := range key.FindAllStringSubmatch(comment, -1) {
				commented[m[1]] = true
			}
		}
	}
	var missing []string
	for _, path := range configKeyPaths(reflect.TypeOf(Config{}), "") {
		leaf := path[strings.LastIndex(path, ".")+1:]
		if !set[path] && !commented[leaf] {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		t.Errorf("config.example.yaml does not document %d keys:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
}

// configKeyPaths lists every key the configuration accepts, lists and maps
// left out of the path ("sources.token").
func configKeyPaths(t reflect.Type, prefix string) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return nil
	}
	var paths []string
	for name, ft := range yamlFields(t) {
		path := join(prefix, name)
		paths = append(paths, path)
		paths = append(paths, configKeyPaths(ft, path)...)
	}
	sort.Strings(paths)
	return paths
}

// collectKeyPaths records the path of every key set in a YAML document, in
// the form configKeyPaths uses.
func collectKeyPaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			path := join(prefix, n.Content[i].Value)
			out[path] = true
			collectKeyPaths(n.Content[i+1], path, out)
		}
	}
}

// TestKeyPathsWalk shows the walk sees nested and listed keys, so the test
// above can fail.
func TestKeyPathsWalk(t *testing.T) {
	paths := strings.Join(configKeyPaths(reflect.TypeOf(Config{}), ""), " ")
	for _, want := range []string{"graph.tenants.client_secret_file", "sources.identity.country_code", "directory_file", "nats.tls.ca_file"} {
		if !strings.Contains(" "+paths+" ", " "+want+" ") {
			t.Errorf("walk misses %s", want)
		}
	}
}
