// Command sqlsecrets-bench measures sqlsecrets against the raw database
// and against the PHP original's rotation algorithm, side by side on one
// database in one run, and prints the results as a Markdown table.
//
// It reads DATABASE_URL and works in a schema of its own,
// sqlsecrets_bench, which it drops and creates at the start and drops at
// the end (unless -keep). Run it from the repository root:
//
//	./scripts/with-postgres go run ./cmd/sqlsecrets-bench          # 100k and 1M rows
//	./scripts/with-postgres go run ./cmd/sqlsecrets-bench -quick   # 10k rows, under a minute
//
// The table goes to standard output (and to -out FILE), progress lines
// to standard error. Only the ratios of one run mean anything: the
// absolute figures move with whatever else the machine is doing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// schemaName is the schema every connection works in.
const schemaName = "sqlsecrets_bench"

// config is what the flags say.
type config struct {
	rows       []int
	quick      bool
	out        string
	keep       bool
	samples    string
	iterations int
	phpRows    int
	importRows int
	child      string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlsecrets-bench: error:", err)
		os.Exit(2)
	}
	if cfg.child != "" {
		err = runChild(ctx, cfg.child, os.Stdout)
	} else {
		err = run(ctx, cfg, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sqlsecrets-bench: error:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("sqlsecrets-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rows := fs.String("rows", "100000,1000000", "table sizes to measure, comma-separated")
	fs.BoolVar(&cfg.quick, "quick", false,
		"a smoke run: 10000 rows (unless -rows), fewer iterations")
	fs.StringVar(&cfg.out, "out", "", "also write the report, in Markdown, to `file`")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the schema "+schemaName+" at the end")
	fs.StringVar(&cfg.samples, "samples", "testdata/sample-secrets.jsonl",
		"JSON Lines `file` the rows are made from")
	fs.IntVar(&cfg.iterations, "iterations", 2000,
		"Get and Set operations timed each way per size (-quick: 300)")
	fs.IntVar(&cfg.phpRows, "php-rows", 5000,
		"rows the PHP algorithm rotates per size (-quick: 1000)")
	fs.IntVar(&cfg.importRows, "import-rows", 100000, "rows to import (-quick: 10000)")
	fs.StringVar(&cfg.child, "child", "", "internal: run as the measured child process")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: sqlsecrets-bench [flags]\n\n"+
			"Measures sqlsecrets against raw pgx and the PHP original's rotation, in the\n"+
			"schema "+schemaName+" of the database at DATABASE_URL, and prints a Markdown\n"+
			"table on standard output.\n\nflags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "child" {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(stderr, "  -%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cfg.quick {
		if !set["rows"] {
			*rows = "10000"
		}
		if !set["iterations"] {
			cfg.iterations = 300
		}
		if !set["php-rows"] {
			cfg.phpRows = 1000
		}
		if !set["import-rows"] {
			cfg.importRows = 10000
		}
	}
	var err error
	if cfg.rows, err = parseRows(*rows); err != nil {
		return cfg, err
	}
	if cfg.iterations < 1 || cfg.phpRows < 1 || cfg.importRows < 1 {
		return cfg, errors.New("-iterations, -php-rows and -import-rows must be at least 1")
	}
	return cfg, nil
}

// parseRows reads a comma-separated list of positive row counts; digits
// may be grouped with '_'.
func parseRows(s string) ([]int, error) {
	var rows []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(f), "_", ""))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-rows: %q is not a positive number of rows", f)
		}
		rows = append(rows, n)
	}
	return rows, nil
}

// progress writes one progress line to w.
func progress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "sqlsecrets-bench: "+format+"\n", args...)
}

// since returns the time since start, rounded for a progress line.
func since(start time.Time) time.Duration { return time.Since(start).Round(time.Millisecond) }
