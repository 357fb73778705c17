package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress shows how far a long command has got, on standard error only.
// On a terminal it redraws one line with a bar; elsewhere it prints plain
// lines, at most one per interval, and the last state when done. It is
// used from one goroutine.
type progress struct {
	w     io.Writer
	tty   bool
	label string // the command: "import", "rotate", "verify"
	now   func() time.Time
	every time.Duration // the least time between two lines or redraws

	started bool      // update has been called
	pending bool      // the latest state has not been shown yet
	last    time.Time // when the last line or redraw went out
	frac    float64   // the latest fraction done, or -1 when unknown
	head    string    // the latest text, before the percentage of a plain line
	tail    string    // and after it
	width   int       // of the line on the terminal, to blank it on redraw
}

// Intervals between plain lines and between redraws of the bar.
const (
	plainEvery = time.Second
	ttyEvery   = 100 * time.Millisecond
	barWidth   = 24
)

// newProgress returns a progress for the command label, writing to the
// standard error of c.
func (c *cli) newProgress(label string) *progress {
	p := &progress{w: c.stderr, tty: c.stderrTTY, label: label, now: time.Now, every: plainEvery}
	if p.tty {
		p.every = ttyEvery
	}
	return p
}

// update records the state: frac done between 0 and 1 (or -1 when the
// total is unknown), and a text in two parts such as "500/1000 rows" and
// ", 3 failed"; plain lines put the percentage between them. It is shown
// now if the last line or redraw is old enough, otherwise later.
func (p *progress) update(frac float64, head, tail string) {
	p.frac, p.head, p.tail = frac, head, tail
	p.started, p.pending = true, true
	if t := p.now(); p.last.IsZero() || t.Sub(p.last) >= p.every {
		p.show()
		p.last = t
	}
}

// done shows the last state if it has not been shown yet, and ends the
// bar's line on a terminal. Call it once, when the work stops for
// whatever reason; it does nothing if update was never called.
func (p *progress) done() {
	if !p.started {
		return
	}
	if p.pending {
		p.show()
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
	p.started = false
}

func (p *progress) show() {
	p.pending = false
	if !p.tty {
		pct := ""
		if p.frac >= 0 {
			pct = fmt.Sprintf(" (%d%%)", int(min(1, p.frac)*100))
		}
		fmt.Fprintf(p.w, "sqlsecrets: %s: %s%s%s\n", p.label, p.head, pct, p.tail)
		return
	}
	line := p.label + " " + bar(p.frac) + " " + p.head + p.tail
	pad := max(0, p.width-len(line))
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
}

// bar draws frac as "[=====>      ]  42%", or "[ ... ]" when frac is
// unknown.
func bar(frac float64) string {
	if frac < 0 {
		return "[" + strings.Repeat(" ", barWidth/2-2) + "..." +
			strings.Repeat(" ", barWidth/2-1) + "]"
	}
	frac = min(1, frac)
	n := int(frac * barWidth)
	b := strings.Repeat("=", n)
	if n < barWidth {
		b += ">" + strings.Repeat(" ", barWidth-n-1)
	}
	return fmt.Sprintf("[%s] %3d%%", b, int(frac*100))
}

// fraction returns done/total, or -1 when total is not known.
func fraction(done, total int64) float64 {
	if total <= 0 {
		return -1
	}
	return float64(done) / float64(total)
}
