package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync/atomic"

	"github.com/sqlsecrets/sqlsecrets/importer"
)

var importCommand = &command{
	name:     "import",
	synopsis: "[--batch N] FILE|-",
	summary:  "load secrets from JSON Lines",
	help: `Import stores the secrets of FILE, or of standard input for "-", sealed
with SECRETS_KEY and overwriting secrets that exist. The input is JSON
Lines, one object per line; blank lines are skipped:

  {"group": "users", "owner": 42, "key": "api_token", "value": "..."}

group defaults to "global", owner may be null or absent for a secret with no
owner, and value is any JSON, null included.

Records are written in batches of --batch, each in one statement (a COPY
until a batch meets a secret that exists, an upsert from then on), so a
batch lands whole or not at all. A bad line stops the import with exit status 1:
the message names the line, never its content, and says how many records
the batches before it wrote; nothing of the bad line's batch is written.
At the end import prints how many secrets it wrote. Progress goes to
standard error.
`,
	run: runImport,
}

func runImport(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	batch := registerBatch(fs, importer.DefaultBatchSize, importer.MaxBatchSize,
		"write `N` records per statement")
	rest, err := c.parse(fs, args, "FILE", 1)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 0:
		return usageError("missing FILE", `give a JSON Lines file, or "-" for standard input`)
	case len(rest) > 1:
		return usageError(fmt.Sprintf("import takes one FILE, got %d arguments", len(rest)),
			"import the files one by one")
	}

	ring, pool, err := open(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()

	in, size, err := c.openInput(rest[0])
	if err != nil {
		return err
	}
	defer in.Close()
	counted := &countingReader{r: in}

	prog := c.newProgress("import")
	n, err := importer.Import(ctx, pool, ring, counted, importer.Options{
		BatchSize: *batch,
		Progress: func(written int64) {
			// The fraction is of the input read, which runs ahead of the writes.
			prog.update(fraction(counted.n.Load(), size),
				plural(written, "secret")+" written, input read", "")
		},
	})
	prog.done()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "imported %s\n", plural(n, "secret"))
	return nil
}

// openInput opens FILE, or standard input for "-", and returns its size
// when it is a regular file, or -1.
func (c *cli) openInput(name string) (io.ReadCloser, int64, error) {
	if name == "-" {
		if c.stdinTTY {
			c.note("reading JSON Lines from standard input; end with Ctrl-D")
		}
		return io.NopCloser(c.stdin), -1, nil
	}
	f, err := os.Open(name)
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		// Without the path: FILE is an argument, and might not be a name.
		return nil, 0, fmt.Errorf("cannot open FILE: %w", pe.Err)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("cannot open FILE: %w", err)
	}
	size := int64(-1)
	fi, err := f.Stat()
	switch {
	case err == nil && fi.IsDir():
		f.Close()
		return nil, 0, usageError("FILE is a directory", `give a JSON Lines file, or "-" for standard input`)
	case err == nil && fi.Mode().IsRegular():
		size = fi.Size()
	}
	return f, size, nil
}

// countingReader counts the bytes read through it. The importer reads from
// a goroutine of its own while progress reads the count.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

// Read reads from the underlying reader. A read error loses its path,
// which is an argument.
func (cr *countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	cr.n.Add(int64(n))
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = fmt.Errorf("reading FILE: %w", pe.Err)
	}
	return n, err
}
