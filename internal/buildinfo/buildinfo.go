// Package buildinfo says which build is running: the version and revision
// stamped at link time, or else what Go embedded in the binary.
package buildinfo

import "runtime/debug"

// Resolve returns version and revision, each filled from the module and
// VCS information Go embeds when it was not stamped. A revision read from
// VCS is shortened to 12 characters and ends in "+changes" for a build
// from a modified tree. What is known of neither is "unknown".
func Resolve(version, revision string) (string, string) {
	info, ok := debug.ReadBuildInfo()
	if ok && version == "" {
		version = info.Main.Version
	}
	if ok && revision == "" {
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(revision) > 12 {
			revision = revision[:12]
		}
		if revision != "" && modified {
			revision += "+changes"
		}
	}
	return orUnknown(version), orUnknown(revision)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
