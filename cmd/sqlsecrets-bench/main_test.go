package main

import (
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []int // rows
		iter int
	}{
		{nil, []int{100000, 1000000}, 2000},
		{[]string{"-quick"}, []int{10000}, 300},
		{[]string{"-quick", "-rows", "5_000"}, []int{5000}, 300},
		{[]string{"-rows", "1000, 2000", "-iterations", "7"}, []int{1000, 2000}, 7},
	} {
		cfg, err := parseFlags(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		if diff := cmp.Diff(tc.want, cfg.rows); diff != "" || cfg.iterations != tc.iter {
			t.Errorf("%q: rows (-want +got):\n%s; iterations %d, want %d",
				tc.args, diff, cfg.iterations, tc.iter)
		}
	}
	for _, args := range [][]string{
		{"-rows", "0"}, {"-rows", "1,x"}, {"-rows", ""}, {"-iterations", "0"}, {"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}

func TestFormats(t *testing.T) {
	got := []string{
		thousands(0), thousands(999), thousands(1000), thousands(1234567.4), thousands(-1000),
		micros(51300 * time.Nanosecond), micros(384 * time.Microsecond),
		mib(32154), ratio(0.123), ratio(12.34),
		setupSummary([]setupTime{
			{"seed", 10, time.Second}, {"restore", 10, time.Second},
			{"restore", 10, 3 * time.Second},
		}),
	}
	want := []string{
		"0", "999", "1,000", "1,234,567", "-1,000",
		"51.3 µs", "384 µs",
		"31.4 MiB", "0.12", "12.3",
		"seed 10 rows 1.0 s; restore 10 rows 2.0 s on average (2 times, 1.0 s to 3.0 s)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("formats (-want +got):\n%s", diff)
	}
}
