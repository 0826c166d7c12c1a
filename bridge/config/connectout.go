package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/presence-bridge/presence-bridge/adapters"
	"github.com/presence-bridge/presence-bridge/adapters/caldav"
	"github.com/presence-bridge/presence-bridge/adapters/sipdialog"
)

// SIPDialog is a sipdialog source's own block: the source's settings and
// the _file and _env forms of its password.
type SIPDialog struct {
	sipdialog.Config `yaml:",inline"`
	PasswordFile     string `yaml:"password_file"`
	PasswordEnv      string `yaml:"password_env"`
}

// CalDAV is a caldav source's own block. Each calendar's password and
// token may be given in their _file or _env form too.
type CalDAV struct {
	caldav.Config `yaml:",inline"`
}

// ConnectsOut reports whether a source of this type connects out to its
// system (it has a runner and no webhook path).
func ConnectsOut(sourceType string) bool {
	return sourceType == "sipdialog" || sourceType == "caldav"
}

// Settings returns the configuration of a connect-out source's own type
// (a sipdialog.Config or a caldav.Config), secrets resolved and named
// after the source; nil for a webhook source.
func (s Source) Settings() any {
	switch {
	case s.Type == "sipdialog" && s.SIPDialog != nil:
		return s.SIPDialog.Config
	case s.Type == "caldav" && s.CalDAV != nil:
		c := s.CalDAV.Config
		c.Name = s.Name
		return c
	}
	return nil
}

// resolveConnectOut resolves the secrets of source i's own block.
func (s *Source) resolveConnectOut(i int, resolve func(path string, value *string, file, env string)) {
	if d := s.SIPDialog; d != nil {
		resolve(fmt.Sprintf("sources[%d].sipdialog.password", i), &d.Password, d.PasswordFile, d.PasswordEnv)
	}
	if c := s.CalDAV; c != nil {
		for j := range c.Calendars {
			cal := &c.Calendars[j]
			at := fmt.Sprintf("sources[%d].caldav.calendars[%d]", i, j)
			resolve(at+".password", &cal.Password, cal.PasswordFile, cal.PasswordEnv)
			resolve(at+".token", &cal.Token, cal.TokenFile, cal.TokenEnv)
		}
	}
}

// validateConnectOut checks the blocks of source s at path: the one its
// type needs, no other, and no webhook settings.
func validateConnectOut(p *problems, path string, s Source) {
	p.check(s.SIPDialog == nil || s.Type == "sipdialog", path+".sipdialog", "only for a source of type sipdialog")
	p.check(s.CalDAV == nil || s.Type == "caldav", path+".caldav", "only for a source of type caldav")
	if !ConnectsOut(s.Type) {
		return
	}
	p.check(s.Path == "", path+".path", "a %s source connects out and has no webhook path", s.Type)
	p.check(!given(s.Token, s.TokenFile, s.TokenEnv) && !given(s.Secret, s.SecretFile, s.SecretEnv) && s.PublicURL == "",
		path, "a %s source has no webhook: token, secret and public_url do not apply (its credentials go in its %s block)", s.Type, s.Type)
	var err error
	switch s.Type {
	case "sipdialog":
		if s.SIPDialog == nil {
			p.add(path + ".sipdialog: required for a sipdialog source")
			return
		}
		_, err = sipdialog.New(s.Name, s.SIPDialog.Config, nil)
	case "caldav":
		if s.CalDAV == nil {
			p.add(path + ".caldav: required for a caldav source")
			return
		}
		p.check(s.CalDAV.Name == "" || s.CalDAV.Name == s.Name, path+".caldav.name", "leave it out: the source's name is used")
		if !adapters.ValidSourceName(s.Name) {
			return // reported under name
		}
		_, err = caldav.New(s.Settings().(caldav.Config))
	}
	if err == nil {
		return
	}
	// The packages wrap their list of "key: problem" lines in one
	// sentence naming the source; each line is reported under the block.
	if inner := errors.Unwrap(err); inner != nil {
		err = inner
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		p.add(path + "." + s.Type + "." + line)
	}
}
