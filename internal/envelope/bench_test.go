package envelope_test

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"
)

// benchPlaintext is the JSON text of a string value, size bytes long.
func benchPlaintext(size int) []byte {
	return []byte(`"` + strings.Repeat("x", max(size-2, 0)) + `"`)
}

func BenchmarkSeal(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(sizeName(size), func(b *testing.B) {
			k := fuzzKey(b)
			pt := benchPlaintext(size)
			b.ReportAllocs()
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := k.Seal(testScope, pt, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen times Parse and Open together, as a read does.
func BenchmarkOpen(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(sizeName(size), func(b *testing.B) {
			k := fuzzKey(b)
			pt := benchPlaintext(size)
			v, err := k.Seal(testScope, pt, rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := parseOpen(k, testScope, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenParallel shows how Open scales when many goroutines share
// one Key.
func BenchmarkOpenParallel(b *testing.B) {
	k := fuzzKey(b)
	v, err := k.Seal(testScope, benchPlaintext(100), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := parseOpen(k, testScope, v); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func sizeName(size int) string { return strconv.Itoa(size) + "B" }
