package reliability_test

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	soak       = flag.Bool("soak", false, "run the long soak: many more cases, operations and faults")
	figuresOut = flag.String("figures", "", "write the table of figures to this file when the run ends")
)

// scale returns n for a normal run and n*factor for a soak.
func scale(n, factor int) int {
	if *soak {
		return n * factor
	}
	return n
}

// figures are the counters of one kind of attack. Tests add to them as they
// go; the table is printed at the end of the run.
type figures struct {
	cases      atomic.Int64 // distinct inputs or scenarios tried
	mutations  atomic.Int64 // altered stored values or inputs
	operations atomic.Int64 // library or command calls made
	faults     atomic.Int64 // failures injected: kills, cancels, restarts
	lost       atomic.Int64 // rows that should exist and do not, or hold the wrong value
	unreadable atomic.Int64 // rows that no longer open with the keyring that should open them
	leaks      atomic.Int64 // secret values or key material seen where they must not be
}

var (
	kindsMu sync.Mutex
	kinds   = map[string]*figures{}
)

// kind returns the counters of the named kind of attack.
func kind(name string) *figures {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	f := kinds[name]
	if f == nil {
		f = &figures{}
		kinds[name] = f
	}
	return f
}

// lose records n lost rows and fails the test.
func (f *figures) lose(t testing.TB, n int64, why string) {
	t.Helper()
	f.lost.Add(n)
	t.Errorf("%d rows lost: %s", n, why)
}

// unread records n unreadable rows and fails the test.
func (f *figures) unread(t testing.TB, n int64, why string) {
	t.Helper()
	f.unreadable.Add(n)
	t.Errorf("%d rows unreadable: %s", n, why)
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *figuresOut != "" {
		if err := writeFigures(*figuresOut); err != nil {
			fmt.Fprintln(os.Stderr, "figures:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func writeFigures(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	printFigures(f)
	return f.Close()
}

// printFigures writes the table in Markdown, one row per kind and a total.
func printFigures(w io.Writer) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)

	mode := "normal run"
	if *soak {
		mode = "soak (-soak)"
	}
	fmt.Fprintf(w, "Figures of the reliability suite, %s:\n\n", mode)
	head := []string{"kind", "cases", "mutations", "operations", "faults injected",
		"rows lost", "rows unreadable", "leaks found"}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(head, " | "), strings.Repeat(" --- |", len(head)))
	var total [7]int64
	for _, n := range names {
		k := kinds[n]
		row := [7]int64{k.cases.Load(), k.mutations.Load(), k.operations.Load(), k.faults.Load(),
			k.lost.Load(), k.unreadable.Load(), k.leaks.Load()}
		fmt.Fprintf(w, "| %s |", n)
		for i, v := range row {
			fmt.Fprintf(w, " %d |", v)
			total[i] += v
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, "| **all** |")
	for _, v := range total {
		fmt.Fprintf(w, " **%d** |", v)
	}
	fmt.Fprintln(w)
}
