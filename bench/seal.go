package bench

import (
	"runtime"

	"github.com/jackc/pgx/v5"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// copyColumns are the columns that sealed rows fill, in their order.
var copyColumns = []string{"key", "group", "owner_id", "value"}

// sealBlock is how many rows one goroutine seals at a time.
const sealBlock = 1000

type sealed struct {
	rows [][]any
	err  error
}

// sealer seals a range of rows of Data on every processor and hands them
// out in order, a block at a time. It keeps only a few blocks ahead of its
// reader, so sealing a million rows does not hold a million rows.
type sealer struct {
	blocks chan chan sealed
	stop   chan struct{}
	cur    [][]any
	err    error
}

// startSealer starts sealing rows from to to-1 with ring's current key.
// The reader must call close when it stops reading, at the end or not.
func startSealer(d *Data, ring *secrets.Keyring, from, to int) *sealer {
	workers := runtime.GOMAXPROCS(0)
	s := &sealer{blocks: make(chan chan sealed, 2*workers), stop: make(chan struct{})}
	go func() {
		defer close(s.blocks)
		for start := from; start < to; start += sealBlock {
			end := min(start+sealBlock, to)
			block := make(chan sealed, 1)
			select {
			case s.blocks <- block:
			case <-s.stop:
				return
			}
			go func() {
				rows, err := sealRows(d, ring, start, end)
				block <- sealed{rows, err}
			}()
		}
	}()
	return s
}

// sealRows seals rows from to to-1 as COPY rows.
func sealRows(d *Data, ring *secrets.Keyring, from, to int) ([][]any, error) {
	rows := make([][]any, 0, to-from)
	for i := from; i < to; i++ {
		n := d.Name(i)
		v, err := ring.Seal(n, d.JSON(i))
		if err != nil {
			return nil, err
		}
		rows = append(rows, []any{n.Key, n.Group, *n.Owner, v})
	}
	return rows, nil
}

// next returns the next block, or nil after the last.
func (s *sealer) next() ([][]any, error) {
	block, ok := <-s.blocks
	if !ok {
		return nil, nil
	}
	b := <-block
	return b.rows, b.err
}

// all returns every row that is left.
func (s *sealer) all() ([][]any, error) {
	var rows [][]any
	for {
		b, err := s.next()
		if err != nil || b == nil {
			return rows, err
		}
		rows = append(rows, b...)
	}
}

// source returns the rows as a COPY source.
func (s *sealer) source() pgx.CopyFromSource {
	return pgx.CopyFromFunc(func() ([]any, error) {
		if len(s.cur) == 0 {
			b, err := s.next()
			if err != nil || b == nil {
				return nil, err
			}
			s.cur = b
		}
		row := s.cur[0]
		s.cur = s.cur[1:]
		return row, nil
	})
}

// close stops sealing blocks that no one will read.
func (s *sealer) close() { close(s.stop) }
