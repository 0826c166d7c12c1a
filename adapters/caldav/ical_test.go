package caldav

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// testPerson is Alice, in New York, for the golden cases.
func testPerson(t testing.TB) person {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	return person{addresses: []string{"alice@example.com"}, loc: loc}
}

var (
	testFrom = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	testTo   = time.Date(2026, 12, 10, 0, 0, 0, 0, time.UTC)
)

// calendarWindows is the whole conversion: one calendar object to the
// busy windows overlapping [from, to).
func calendarWindows(data []byte, p person, from, to time.Time, limit int) ([]Occurrence, error) {
	comps, err := parseObject(data, DefaultMaxObjectBytes, p)
	if err != nil {
		return nil, err
	}
	return expand(comps, from, to, limit)
}

// TestCalendarWindowsGolden converts each testdata/<case>/event.ics and
// compares the windows with windows.golden.json (go test -update rewrites
// them).
func TestCalendarWindowsGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/*/event.ics")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, path := range dirs {
		dir := filepath.Dir(path)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			occs, err := calendarWindows(data, testPerson(t), testFrom, testTo, DefaultMaxOccurrences)
			if err != nil {
				t.Fatal(err)
			}
			if occs == nil {
				occs = []Occurrence{}
			}
			got, _ := json.MarshalIndent(occs, "", "  ")
			got = append(got, '\n')
			golden := filepath.Join(dir, "windows.golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("windows differ from %s:\ngot  %s\nwant %s", golden, got, want)
			}
		})
	}
}

// TestCalendarWindowsBounds checks the caps: an object over the size
// limit, too many occurrences, and a rule finer than daily.
func TestCalendarWindowsBounds(t *testing.T) {
	p := testPerson(t)
	daily := []byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20200101T090000Z\r\nDURATION:PT1H\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	if _, err := parseObject(daily, 64, p); err == nil {
		t.Error("an object over the size cap was read")
	}
	occs, err := calendarWindows(daily, p, testFrom, testTo, 3)
	if err != errTooMany || len(occs) != 3 {
		t.Errorf("got %d occurrences, %v; want 3 and errTooMany", len(occs), err)
	}
	occs, err = calendarWindows(daily, p, testFrom, testTo, 100)
	if err != nil || len(occs) != 7 {
		t.Errorf("got %d occurrences, %v; want 7 days", len(occs), err)
	}
	secondly := bytes.Replace(daily, []byte("FREQ=DAILY"), []byte("FREQ=SECONDLY;BYMONTH=2;BYMONTHDAY=31"), 1)
	occs, err = calendarWindows(secondly, p, testFrom, testTo, 100)
	if err != nil || len(occs) != 0 {
		t.Errorf("a secondly rule gave %d occurrences, %v", len(occs), err)
	}
}

// FuzzCalendarWindows feeds arbitrary iCalendar to the conversion: it
// must not panic, and never return more windows than asked.
func FuzzCalendarWindows(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*/event.ics")
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261203T090000Z\r\nDURATION:P1D\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Add([]byte("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;VALUE=DATE:20261203\r\nRDATE:20261204T090000Z,bad\r\nEXDATE;TZID=../../etc/passwd:20261203T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	p := testPerson(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		occs, _ := calendarWindows(data, p, testFrom, testTo, 50)
		if len(occs) > 50 {
			t.Fatalf("%d occurrences beyond the cap", len(occs))
		}
		for _, o := range occs {
			if !o.End.After(o.Start) || o.ShowAs == "" {
				t.Fatalf("bad window %+v", o)
			}
		}
	})
}
