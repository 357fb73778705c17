package bench

import (
	"strings"
	"testing"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// cryptoName is the secret that the seal and open benchmarks seal for.
func cryptoName() secrets.Name {
	owner := int64(42)
	return secrets.Name{Group: "users", Owner: &owner, Key: "api_token"}
}

// cryptoValue returns the JSON text of a string value, size bytes long.
func cryptoValue(size int) []byte {
	return []byte(`"` + strings.Repeat("x", max(size-2, 0)) + `"`)
}

// SealBenchmark returns a benchmark of ring.Seal on a value whose JSON
// text is size bytes, for testing.Benchmark or a Benchmark function. It
// reports allocations.
func SealBenchmark(ring *secrets.Keyring, size int) func(*testing.B) {
	return func(b *testing.B) {
		n, pt := cryptoName(), cryptoValue(size)
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := ring.Seal(n, pt); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// OpenBenchmark returns a benchmark of ring.Open of a value whose JSON
// text is size bytes, sealed with ring's current key, for
// testing.Benchmark or a Benchmark function. It reports allocations.
func OpenBenchmark(ring *secrets.Keyring, size int) func(*testing.B) {
	return func(b *testing.B) {
		n, pt := cryptoName(), cryptoValue(size)
		stored, err := ring.Seal(n, pt)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, _, err := ring.Open(n, stored); err != nil {
				b.Fatal(err)
			}
		}
	}
}
