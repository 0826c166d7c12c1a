package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// unknownKeys walks a YAML node against the Go type it decodes into and
// returns one problem per key that the type does not have, each naming the
// key's full path ("graph.tenants[0].secret: unknown key").
func unknownKeys(node *yaml.Node, t reflect.Type, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.DocumentNode {
		if len(node.Content) == 0 {
			return nil
		}
		return unknownKeys(node.Content[0], t, path)
	}
	if node.Kind == yaml.AliasNode && node.Alias != nil {
		return unknownKeys(node.Alias, t, path)
	}
	var problems []string
	switch {
	case t.Kind() == reflect.Struct && node.Kind == yaml.MappingNode:
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			key, value := node.Content[i].Value, node.Content[i+1]
			ft, ok := fields[key]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: unknown key (line %d)", join(path, key), node.Content[i].Line))
				continue
			}
			problems = append(problems, unknownKeys(value, ft, join(path, key))...)
		}
	case t.Kind() == reflect.Map && node.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			problems = append(problems, unknownKeys(node.Content[i+1], t.Elem(), join(path, node.Content[i].Value))...)
		}
	case t.Kind() == reflect.Slice && node.Kind == yaml.SequenceNode:
		for i, item := range node.Content {
			problems = append(problems, unknownKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return problems
}

// yamlFields lists the YAML keys of a struct type, following inline fields.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
