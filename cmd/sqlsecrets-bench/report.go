package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqlsecrets/sqlsecrets/bench"
	"github.com/sqlsecrets/sqlsecrets/importer"
)

// row is one line of the table.
type row struct {
	scenario, size, figure, baseline, ratio string
}

// report is everything the command prints.
type report struct {
	machine []string
	rows    []row
	notes   []string
	took    time.Duration
}

func (r *report) add(x row) { r.rows = append(r.rows, x) }

// markdown returns the report as Markdown.
func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("## sqlsecrets benchmark\n\n")
	for _, m := range r.machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	fmt.Fprintf(&b, "- whole run: %s\n\n", seconds(r.took))
	b.WriteString("| scenario | size | figure | baseline | ratio |\n")
	b.WriteString("| --- | --- | --: | --: | --: |\n")
	for _, x := range r.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n",
			x.scenario, x.size, x.figure, x.baseline, x.ratio)
	}
	b.WriteString("\n")
	for _, n := range r.notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// notes explains the table and lists the setup times.
func (b *bencher) notes(data *bench.Data) {
	n := []string{
		"ratio is figure ÷ baseline: for µs, above 1 means sqlsecrets is slower; " +
			"for rows/s, below 1 means it is slower. Only ratios mean anything: " +
			"other work on the machine moves the absolute figures.",
		fmt.Sprintf("rows: group and key of the %s samples in %s, a unique owner each, and a "+
			"%d-character string value cut from the samples' text (%.0f bytes of JSON on "+
			"average); every row is sealed with the old key before each scenario.",
			thousands(float64(data.Samples())), b.cfg.samples, bench.ValueChars,
			data.MeanJSONBytes()),
		"Get and Set: pairs interleaved, each in the other order than the one before (raw, " +
			"facade; facade, raw; ...), on rows picked at " +
			"random, through one pool, after a warm-up; the raw upsert is UpsertSecret's " +
			"statement with a value sealed before its timer starts.",
		"rotate (a): one `" + bench.FloorSQL + "`; (b): batches of " +
			strconv.Itoa(bench.KeysetBatch) + " by keyset on id, read (rotation's columns) " +
			"and written back unchanged by one UPDATE ... FROM unnest, no crypto; (c): the " +
			"PHP original's algorithm, pages of " + strconv.Itoa(bench.PHPPage) + " by OFFSET " +
			"and one autocommitted UPDATE per row, with sqlsecrets' own open and seal, " +
			"measured on " + rowCount(b.cfg.phpRows) + " rows in pages spread evenly over the " +
			"table, so that OFFSET skips as many rows on average as over the whole table.",
		"rotation.Options has " + workersNote(),
		"peak RSS: getrusage's ru_maxrss of a child process (this command run again with a " +
			"hidden flag) that connects and rotates the whole table with default options; " +
			"the idle child only connects.",
		"import: into an empty table, default options (batches of " +
			thousands(importer.DefaultBatchSize) + ", each one COPY); the COPY's rows " +
			"were sealed before its timer started.",
	}
	if !b.env.Checkpoints() {
		n = append(n, "CHECKPOINT was refused (needs superuser or pg_checkpoint): a "+
			"scenario may pay for writing out pages dirtied by the restore before it.")
	}
	n = append(n, "setup, timed apart from every figure (seed: seal on "+
		strconv.Itoa(runtime.GOMAXPROCS(0))+" processors, COPY, copy to bench_seed; restore: "+
		"TRUNCATE and INSERT ... SELECT from bench_seed; both then VACUUM (ANALYZE) and "+
		"CHECKPOINT): "+setupSummary(b.setup)+".")
	b.rep.notes = n
}

// setupTime is how long one seed or restore took.
type setupTime struct {
	what string
	rows int
	took time.Duration
}

// setupSummary sums up the setup times by step and size.
func setupSummary(times []setupTime) string {
	type key struct {
		what string
		rows int
	}
	var order []key
	groups := map[key][]time.Duration{}
	for _, t := range times {
		k := key{t.what, t.rows}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t.took)
	}
	var parts []string
	for _, k := range order {
		ds := groups[k]
		if len(ds) == 1 {
			parts = append(parts, fmt.Sprintf("%s %s rows %s", k.what, rowCount(k.rows),
				seconds(ds[0])))
			continue
		}
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		parts = append(parts, fmt.Sprintf("%s %s rows %s on average (%d times, %s to %s)",
			k.what, rowCount(k.rows), seconds(sum/time.Duration(len(ds))), len(ds),
			seconds(slices.Min(ds)), seconds(slices.Max(ds))))
	}
	return strings.Join(parts, "; ")
}

func workersNote() string {
	if len(bench.RotationWorkers()) > 1 {
		return "a worker knob, Workers: rotation ran with default options (one keyset " +
			"pass that reads and seals ahead on one connection while two batches at a time " +
			"are written on two more), then with 1, 2 and 4 workers, each walking its " +
			"chunks on a connection of its own."
	}
	return "no worker knob (no Workers field), so rotation ran with default options only."
}

// rowCount prints n with thousands separators.
func rowCount(n int) string { return thousands(float64(n)) }

// thousands prints x rounded to a whole number, with thousands separators.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func rate(t bench.Throughput) string { return thousands(t.PerSecond()) + " rows/s" }

func micros(d time.Duration) string {
	us := float64(d) / float64(time.Microsecond)
	if us < 100 {
		return strconv.FormatFloat(us, 'f', 1, 64) + " µs"
	}
	return thousands(us) + " µs"
}

func mib(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) + " MiB" }

func ratio(x float64) string {
	if x >= 10 {
		return strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
}
