// Command kubelet_go is the kubelet of benchmarks/bench_dra.py: a Go process calling the
// driver's DRA service with grpc-go, the gRPC stack the kubelet itself uses.
//
// It speaks the same line protocol as benchmarks/kubelet_client.py (one JSON command a line
// on stdin, one JSON answer a line on stdout) and takes the same arguments:
//
//	kubelet_go DRA_SOCKET NOOP_SOCKET
//
// Messages are written and read at the wire level from the DRA v1 proto's field numbers
// (Claim: namespace 1, uid 2, name 3; the request's claims 1; the response's map 1, whose
// values carry error in field 2 for a prepare and field 1 for an unprepare), so this
// client shares no code with the driver it measures. Each call is timed around
// ClientConn.Invoke with the monotonic clock, as the kubelet would see it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
)

const (
	service   = "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/"
	prepare   = service + "NodePrepareResources"
	unprepare = service + "NodeUnprepareResources"
)

// rawCodec passes the bytes this program encodes and decodes itself.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytes(b []byte, field int, data []byte) []byte {
	b = appendVarint(b, uint64(field)<<3|2)
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// request encodes NodePrepareResourcesRequest / NodeUnprepareResourcesRequest (same shape).
func request(claims [][2]string) []byte {
	var out []byte
	for _, c := range claims {
		var claim []byte
		claim = appendBytes(claim, 1, []byte("default"))
		claim = appendBytes(claim, 2, []byte(c[1]))
		claim = appendBytes(claim, 3, []byte(c[0]))
		out = appendBytes(out, 1, claim)
	}
	return out
}

func readVarint(b []byte) (uint64, []byte, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if len(b) == 0 {
			return 0, nil, errors.New("truncated varint")
		}
		c := b[0]
		b = b[1:]
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, b, nil
		}
	}
	return 0, nil, errors.New("varint too long")
}

// fields calls fn for each field of a message; only varint and length-delimited fields
// occur in these messages.
func fields(b []byte, fn func(field int, data []byte)) error {
	for len(b) > 0 {
		key, rest, err := readVarint(b)
		if err != nil {
			return err
		}
		switch key & 7 {
		case 0:
			_, rest, err = readVarint(rest)
			if err != nil {
				return err
			}
		case 2:
			n, r, err := readVarint(rest)
			if err != nil {
				return err
			}
			if uint64(len(r)) < n {
				return errors.New("truncated field")
			}
			fn(int(key>>3), r[:n])
			rest = r[n:]
		default:
			return fmt.Errorf("unexpected wire type %d", key&7)
		}
		b = rest
	}
	return nil
}

// errorsByUID reads the response's claims map: uid -> the value's error string (field errField).
func errorsByUID(resp []byte, errField int) (map[string]string, error) {
	out := map[string]string{}
	var inner error
	err := fields(resp, func(f int, entry []byte) {
		if f != 1 {
			return
		}
		var uid, msg string
		if e := fields(entry, func(f int, d []byte) {
			switch f {
			case 1:
				uid = string(d)
			case 2:
				if e := fields(d, func(f int, d []byte) {
					if f == errField {
						msg = string(d)
					}
				}); e != nil {
					inner = e
				}
			}
		}); e != nil {
			inner = e
		}
		out[uid] = msg
	})
	if err == nil {
		err = inner
	}
	return out, err
}

type kubelet struct {
	dra, noop *grpc.ClientConn
}

func call(conn *grpc.ClientConn, method string, req []byte, timeout time.Duration) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var resp []byte
	t0 := time.Now()
	err := conn.Invoke(ctx, method, &req, &resp, grpc.ForceCodec(rawCodec{}))
	return resp, time.Since(t0), err
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

type command struct {
	Op     string      `json:"op"`
	N      int         `json:"n"`
	Warmup int         `json:"warmup"`
	Claim  [2]string   `json:"claim"`
	Claims [][2]string `json:"claims"`
}

func (k *kubelet) handle(c command) (map[string]interface{}, error) {
	switch c.Op {
	case "noop":
		out := make([]float64, 0, c.N)
		for i := -c.Warmup; i < c.N; i++ {
			req := request([][2]string{{"c", fmt.Sprintf("n%d", i)}})
			_, d, err := call(k.noop, prepare, req, 10*time.Second)
			if err != nil {
				return nil, err
			}
			if i >= 0 {
				out = append(out, ms(d))
			}
		}
		return map[string]interface{}{"ms": out}, nil
	case "prepare", "unprepare":
		method, errField := prepare, 2
		if c.Op == "unprepare" {
			method, errField = unprepare, 1
		}
		resp, d, err := call(k.dra, method, request([][2]string{c.Claim}), 10*time.Second)
		if err != nil {
			return nil, err
		}
		errs, err := errorsByUID(resp, errField)
		if err != nil {
			return nil, err
		}
		msg, ok := errs[c.Claim[1]]
		if !ok {
			msg = "no answer for the claim"
		}
		return map[string]interface{}{"ms": ms(d), "error": msg}, nil
	case "concurrent":
		reqs := make([][]byte, len(c.Claims))
		for i, cl := range c.Claims {
			reqs[i] = request([][2]string{cl})
		}
		answers := make([]string, len(c.Claims))
		fails := make([]error, len(c.Claims))
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := range reqs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				resp, _, err := call(k.dra, prepare, reqs[i], 30*time.Second)
				if err != nil {
					fails[i] = err
					return
				}
				errs, err := errorsByUID(resp, 2)
				if err != nil {
					fails[i] = err
					return
				}
				answers[i] = errs[c.Claims[i][1]]
			}(i)
		}
		wg.Wait()
		total := time.Since(t0)
		errs := []string{}
		for i := range answers {
			if fails[i] != nil {
				return nil, fails[i]
			}
			if answers[i] != "" {
				errs = append(errs, answers[i])
			}
		}
		return map[string]interface{}{"ms": ms(total), "errors": errs}, nil
	}
	return nil, fmt.Errorf("unknown command %q", c.Op)
}

func dial(path string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return grpc.DialContext(ctx, "passthrough:///"+path,
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}),
	)
}

func run() error {
	if len(os.Args) != 3 {
		return fmt.Errorf("usage: %s DRA_SOCKET NOOP_SOCKET", os.Args[0])
	}
	dra, err := dial(os.Args[1])
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", os.Args[1], err)
	}
	defer dra.Close()
	noop, err := dial(os.Args[2])
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", os.Args[2], err)
	}
	defer noop.Close()
	k := &kubelet{dra: dra, noop: noop}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	if err := enc.Encode(map[string]bool{"ready": true}); err != nil {
		return err
	}
	out.Flush()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil {
			return err
		}
		answer, err := k.handle(c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.Op, err)
		}
		if err := enc.Encode(answer); err != nil {
			return err
		}
		out.Flush()
	}
	return in.Err()
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet_go:", err)
		os.Exit(1)
	}
}
