// yamux-peer: a Go interop peer for Repeater's yamux implementation.
//
// It is built on HashiCorp's yamux as packaged by Debian
// (golang-github-hashicorp-yamux-dev 0.0+git20190923.df201c7), the reference
// implementation. See docs/INTEROP.md for the scenarios and for the quirks of
// that version which this tool works around.
//
// Build: GOPROXY=off GOFLAGS=-mod=mod go build -o bin/yamux-peer .
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

const usageText = `usage: yamux-peer <command> [flags]

commands:
  server   --listen HOST:PORT [--window BYTES] [-v]
           yamux server on every accepted TCP connection; echoes every stream,
           sends FIN after the peer's FIN once the echo is complete
  client   --connect HOST:PORT --streams N --bytes M [--window BYTES]
           [--concurrency C] [--timeout D]
           yamux client over one TCP connection: N streams, M pseudo-random
           bytes each, half-close, verify the echo byte for byte
  tcpload  --connect HOST:PORT --conns N --bytes M [--concurrency C] [--timeout D]
           N plain TCP connections: write M bytes, half-close, verify the echo
  tcpecho  --listen HOST:PORT [-v]
           plain TCP echo server (half-close aware), for self-tests
  relay    --listen HOST:PORT --backend HOST:PORT [--window BYTES] [-v]
           Go stand-in for repeaterd: every TCP client becomes one stream of
           one yamux client link to --backend

Run "yamux-peer <command> -h" for all flags of a command.
Exit status: 0 success, 1 failure (mismatch, error, timeout), 2 usage error.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText)
		os.Exit(2)
	}
	args := os.Args[2:]
	var rc int
	switch os.Args[1] {
	case "server":
		rc = runServer(args)
	case "client":
		rc = runClient(args)
	case "tcpload":
		rc = runTCPLoad(args)
	case "tcpecho":
		rc = runTCPEcho(args)
	case "relay":
		rc = runRelay(args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usageText)
	default:
		fmt.Fprintf(os.Stderr, "yamux-peer: unknown command %q\n\n%s", os.Args[1], usageText)
		rc = 2
	}
	os.Exit(rc)
}

// ---------------------------------------------------------------------------
// Deterministic test data

// pattern is an endless pseudo-random byte stream, addressable by offset:
// byte o is byte o%8 (little-endian) of word(o/8). Different seeds (one per
// stream or connection) give unrelated streams, so crossed streams are caught.
type pattern struct{ seed uint64 }

func newPattern(base uint64, index int) pattern {
	return pattern{seed: mix64(base*0x9E3779B97F4A7C15 ^ (uint64(index) + 1))}
}

// mix64 is the splitmix64 finaliser.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (p pattern) word(i uint64) uint64 { return mix64(p.seed + i*0x9E3779B97F4A7C15) }

// fill writes bytes [off, off+len(b)) of the stream into b.
func (p pattern) fill(off int64, b []byte) {
	o := uint64(off)
	for len(b) > 0 && o%8 != 0 {
		b[0] = byte(p.word(o/8) >> (8 * (o % 8)))
		b = b[1:]
		o++
	}
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, p.word(o/8))
		b = b[8:]
		o += 8
	}
	for i := range b {
		b[i] = byte(p.word(o/8) >> (8 * uint(i)))
	}
}

// writePattern writes total bytes of p to w in chunks of chunk bytes.
func writePattern(w io.Writer, p pattern, total int64, chunk int, sent *atomic.Int64) error {
	buf := make([]byte, chunk)
	for off := int64(0); off < total; {
		n := int64(chunk)
		if total-off < n {
			n = total - off
		}
		p.fill(off, buf[:n])
		m, err := w.Write(buf[:n])
		off += int64(m)
		sent.Add(int64(m))
		if err != nil {
			return fmt.Errorf("write failed after %d of %d bytes: %v", off, total, err)
		}
	}
	return nil
}

// verifier checks received bytes against the pattern, byte for byte.
type verifier struct {
	pat  pattern
	want int64
	got  int64
	exp  []byte
}

func (v *verifier) check(b []byte) error {
	if cap(v.exp) < len(b) {
		v.exp = make([]byte, len(b))
	}
	exp := v.exp[:len(b)]
	v.pat.fill(v.got, exp)
	if !bytes.Equal(b, exp) {
		for i := range b {
			if b[i] != exp[i] {
				return fmt.Errorf("data mismatch at offset %d: got 0x%02x, want 0x%02x", v.got+int64(i), b[i], exp[i])
			}
		}
	}
	if v.got+int64(len(b)) > v.want {
		return fmt.Errorf("received more bytes than were sent: at least %d, sent %d", v.got+int64(len(b)), v.want)
	}
	v.got += int64(len(b))
	return nil
}

// readVerify reads r until EOF, verifying every byte, and requires exactly
// v.want bytes.
func readVerify(r io.Reader, v *verifier, recv *atomic.Int64) error {
	buf := make([]byte, 64*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if cerr := v.check(buf[:n]); cerr != nil {
				return cerr
			}
			recv.Add(int64(n))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read failed after %d of %d bytes: %v", v.got, v.want, err)
		}
	}
	if v.got != v.want {
		return fmt.Errorf("echo ended (EOF) after %d of %d bytes", v.got, v.want)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Wire sniffer: parses the yamux frames the peer sends us, on their way into
// the Go library. It serves two purposes:
//  1. the Debian yamux's Stream.Read returns io.EOF as soon as *we* have
//     closed our side and its buffer is empty (stream.go:91-101), even though
//     the peer has not sent FIN; the sniffer tells us whether the peer's FIN
//     really arrived and how many bytes preceded it (see streamReader);
//  2. it flags peer frames that a compatible yamux must not send.

const (
	typeData    = 0
	typeWindow  = 1
	typePing    = 2
	typeGoAway  = 3
	flagSYN     = 0x1
	flagACK     = 0x2
	flagFIN     = 0x4
	flagRST     = 0x8
	yamuxHdrLen = 12
)

type streamSniff struct {
	dataBytes  int64 // payload bytes the peer sent on this stream
	finAt      int64 // -1 until the peer's FIN: payload bytes sent before it
	syns, acks int
	fins, rsts int
	notify     chan struct{} // poked on every frame for this stream
}

type sniffer struct {
	mu         sync.Mutex
	peerParity uint32 // stream ids the peer opens: 1 = odd (peer is client), 0 = even
	peerName   string
	hdr        [yamuxHdrLen]byte
	hdrN       int
	skip       int64
	dead       bool
	streams    map[uint32]*streamSniff

	frames        [4]int64
	dataPayload   int64
	maxDataFrame  uint32
	pingReq       int64
	pingReply     int64
	goAways       []uint32
	unknownWindow int64
	notes         []string
	onNote        func(string)
}

func newSniffer(peerIsClient bool, onNote func(string)) *sniffer {
	s := &sniffer{streams: make(map[uint32]*streamSniff), onNote: onNote, peerName: "server"}
	if peerIsClient {
		s.peerParity = 1
		s.peerName = "client"
	}
	return s
}

func (s *sniffer) note(format string, a ...interface{}) {
	msg := fmt.Sprintf(format, a...)
	if len(s.notes) < 1000 {
		s.notes = append(s.notes, msg)
	}
	if s.onNote != nil {
		s.onNote(msg)
	}
}

func (s *sniffer) feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 && !s.dead {
		if s.skip > 0 {
			n := int64(len(p))
			if n > s.skip {
				n = s.skip
			}
			p = p[n:]
			s.skip -= n
			continue
		}
		n := copy(s.hdr[s.hdrN:], p)
		s.hdrN += n
		p = p[n:]
		if s.hdrN < yamuxHdrLen {
			return
		}
		s.hdrN = 0
		s.onHeader()
	}
}

func (s *sniffer) get(id uint32) *streamSniff {
	st := s.streams[id]
	if st == nil {
		st = &streamSniff{finAt: -1, notify: make(chan struct{}, 1)}
		s.streams[id] = st
	}
	return st
}

func (s *sniffer) onHeader() {
	h := s.hdr[:]
	ver, typ := h[0], h[1]
	flags := binary.BigEndian.Uint16(h[2:4])
	id := binary.BigEndian.Uint32(h[4:8])
	length := binary.BigEndian.Uint32(h[8:12])
	if ver != 0 {
		s.note("frame with version %d (header % x); Go yamux drops the connection", ver, h)
		s.dead = true
		return
	}
	if typ > typeGoAway {
		s.note("frame with unknown type %d (header % x); Go yamux drops the connection", typ, h)
		s.dead = true
		return
	}
	s.frames[typ]++
	if flags&^0xF != 0 {
		s.note("frame with unknown flag bits 0x%04x (header % x)", flags, h)
	}
	switch typ {
	case typeData, typeWindow:
		kind := "window update"
		if typ == typeData {
			kind = "data"
			s.skip = int64(length)
			s.dataPayload += int64(length)
			if length > s.maxDataFrame {
				s.maxDataFrame = length
			}
		}
		if id == 0 {
			s.note("%s frame on stream 0", kind)
			return
		}
		st := s.streams[id]
		if st == nil && typ == typeWindow && flags == 0 {
			s.unknownWindow++ // e.g. a window update after we forgot the stream: harmless
			return
		}
		if st == nil {
			st = s.get(id)
		}
		if flags&flagSYN != 0 {
			st.syns++
			if st.syns > 1 {
				s.note("stream %d: SYN again (Go yamux answers a duplicate SYN with Go Away and drops the link)", id)
			}
			if id%2 != s.peerParity {
				s.note("stream %d: SYN from the %s on an id of the wrong parity", id, s.peerName)
			}
		}
		if flags&flagACK != 0 {
			st.acks++
			if id%2 == s.peerParity {
				s.note("stream %d: the %s ACKed a stream it opened itself", id, s.peerName)
			} else if st.acks > 1 {
				s.note("stream %d: ACK #%d (Go yamux takes a slot of its SYN semaphore for every ACK; send it once)", id, st.acks)
			}
		}
		if typ == typeData && length > 0 {
			if st.finAt >= 0 {
				s.note("stream %d: %d data bytes after the %s's FIN", id, length, s.peerName)
			}
			if st.syns == 0 && id%2 == s.peerParity {
				s.note("stream %d: data on a stream the %s never opened (or that was finished)", id, s.peerName)
			}
			st.dataBytes += int64(length)
		}
		if flags&flagFIN != 0 {
			st.fins++
			if st.fins > 1 {
				s.note("stream %d: FIN again (Go yamux treats it as a protocol error and drops the link)", id)
			} else {
				st.finAt = st.dataBytes
			}
		}
		if flags&flagRST != 0 {
			st.rsts++
		}
		select {
		case st.notify <- struct{}{}:
		default:
		}
	case typePing:
		if id != 0 {
			s.note("ping on stream %d (should be 0)", id)
		}
		switch flags {
		case flagSYN:
			s.pingReq++
		case flagACK:
			s.pingReply++
		default:
			s.note("ping with flags 0x%x (want SYN or ACK)", flags)
		}
	case typeGoAway:
		if id != 0 {
			s.note("go away on stream %d (should be 0)", id)
		}
		if length > 2 {
			s.note("go away with unknown code %d", length)
		}
		s.goAways = append(s.goAways, length)
	}
}

// status reports what the peer sent on stream id so far.
func (s *sniffer) status(id uint32) (finAt int64, rsts, acks, fins int, notify chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.get(id)
	return st.finAt, st.rsts, st.acks, st.fins, st.notify
}

func (s *sniffer) forget(id uint32) {
	s.mu.Lock()
	delete(s.streams, id)
	s.mu.Unlock()
}

func (s *sniffer) notesCopy() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.notes...)
}

func (s *sniffer) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("frames from %s: %d data (%d payload bytes, largest %d), %d window updates (%d for forgotten streams), %d ping requests, %d ping replies, go aways %v",
		s.peerName, s.frames[typeData], s.dataPayload, s.maxDataFrame, s.frames[typeWindow], s.unknownWindow, s.pingReq, s.pingReply, s.goAways)
}

// sniffConn passes everything the peer sends through the sniffer sn and,
// if out is set, everything the Go library sends through out.
type sniffConn struct {
	*net.TCPConn
	sn  *sniffer
	out *sniffer
}

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if n > 0 {
		c.sn.feed(p[:n])
	}
	return n, err
}

func (c *sniffConn) Write(p []byte) (int, error) {
	n, err := c.TCPConn.Write(p)
	if n > 0 && c.out != nil {
		c.out.feed(p[:n]) // only the session's send goroutine writes
	}
	return n, err
}

// streamReader works around the early EOF of the Debian yamux: after our own
// Close (half-close), Stream.Read returns io.EOF whenever its buffer is empty,
// although the peer may still send data. An EOF is passed on only once the
// peer's FIN was seen on the wire and every byte before it was delivered.
type streamReader struct {
	st       *yamux.Stream
	sess     *yamux.Session
	sn       *sniffer
	got      int64
	earlyEOF int64
	trustEOF bool // pass on the library's EOF as is (to demonstrate the quirk)
}

func (r *streamReader) Read(p []byte) (int, error) {
	for {
		n, err := r.st.Read(p)
		r.got += int64(n)
		if n > 0 || err == nil || err != io.EOF || r.trustEOF {
			return n, err
		}
		finAt, rsts, _, _, notify := r.sn.status(r.st.StreamID())
		if rsts > 0 {
			return 0, yamux.ErrConnectionReset
		}
		if finAt >= 0 && r.got >= finAt {
			return 0, io.EOF
		}
		if r.sess.IsClosed() {
			return 0, fmt.Errorf("session closed before the peer's FIN (%d bytes received)", r.got)
		}
		r.earlyEOF++
		if finAt >= 0 {
			// FIN seen on the wire, data before it not yet through the library.
			time.Sleep(50 * time.Microsecond)
			continue
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-notify:
		case <-r.sess.CloseChan():
		case <-t.C:
		}
		t.Stop()
	}
}

// ---------------------------------------------------------------------------
// Running N items (streams or connections) with a concurrency limit, a global
// timeout and a progress report when the timeout fires.

type item struct {
	index int
	kind  string // "stream" or "conn"
	id    atomic.Uint32
	sent  atomic.Int64
	recv  atomic.Int64
	phase atomic.Value // string
	done  atomic.Bool
}

func (it *item) label() string {
	if id := it.id.Load(); id != 0 {
		return fmt.Sprintf("%s %d (id %d)", it.kind, it.index, id)
	}
	return fmt.Sprintf("%s %d", it.kind, it.index)
}

func (it *item) setPhase(s string) { it.phase.Store(s) }

func newItems(kind string, n int) []*item {
	items := make([]*item, n)
	for i := range items {
		items[i] = &item{index: i, kind: kind}
		items[i].setPhase("queued")
	}
	return items
}

// startTimeout exits the process with a report when d elapses.
func startTimeout(tool string, d time.Duration, items *[]*item, want int64, extra func() string) *time.Timer {
	return time.AfterFunc(d, func() {
		fmt.Fprintf(os.Stderr, "%s: FAIL: timeout after %v\n", tool, d)
		unfinished := 0
		if items != nil {
			for _, it := range *items {
				if it.done.Load() {
					continue
				}
				unfinished++
				if unfinished <= 10 {
					fmt.Fprintf(os.Stderr, "%s:   %s: sent %d/%d, received %d/%d, %v\n", tool, it.label(),
						it.sent.Load(), want, it.recv.Load(), want, it.phase.Load())
				}
			}
			if unfinished > 10 {
				fmt.Fprintf(os.Stderr, "%s:   ... and %d more unfinished\n", tool, unfinished-10)
			}
		}
		if extra != nil {
			if s := extra(); s != "" {
				fmt.Fprintf(os.Stderr, "%s:   %s\n", tool, s)
			}
		}
		fmt.Printf("%s: FAILED: timeout after %v (%d unfinished)\n", tool, d, unfinished)
		os.Exit(1)
	})
}

// runAll runs fn for every item, at most conc at a time, and returns the
// error messages.
func runAll(items []*item, conc int, fn func(*item) error) []string {
	if conc <= 0 || conc > len(items) {
		conc = len(items)
	}
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func(it *item) {
			defer func() {
				it.done.Store(true)
				<-sem
				wg.Done()
			}()
			it.setPhase("starting")
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", it.label(), err))
				mu.Unlock()
				it.setPhase("failed")
				return
			}
			it.setPhase("done")
		}(it)
	}
	wg.Wait()
	return errs
}

func reportErrors(tool string, errs []string) {
	for i, e := range errs {
		if i == 10 {
			fmt.Fprintf(os.Stderr, "%s: ... and %d more failures\n", tool, len(errs)-10)
			break
		}
		fmt.Fprintf(os.Stderr, "%s: FAIL %s\n", tool, e)
	}
}

func rate(total int64, d time.Duration) string {
	return fmt.Sprintf("%.1f MB/s", float64(total)/d.Seconds()/1e6)
}

// ---------------------------------------------------------------------------
// Common flag handling

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return false
	}
	return true
}

func usageErr(tool, format string, a ...interface{}) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", tool, fmt.Sprintf(format, a...))
	return 2
}

func yamuxConfig(tool string, window uint64, backlog int, keepalive time.Duration) (*yamux.Config, error) {
	if window > math.MaxUint32 {
		return nil, fmt.Errorf("--window %d is larger than 2^32-1", window)
	}
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = uint32(window)
	cfg.AcceptBacklog = backlog
	if keepalive <= 0 {
		cfg.EnableKeepAlive = false
	} else {
		cfg.KeepAliveInterval = keepalive
	}
	cfg.LogOutput = nil
	cfg.Logger = log.New(os.Stderr, tool+": go-yamux: ", log.Lmicroseconds)
	if err := yamux.VerifyConfig(cfg); err != nil {
		return nil, fmt.Errorf("yamux config: %v", err)
	}
	return cfg, nil
}

func dialTCP(addr string, timeout time.Duration) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	tc.SetNoDelay(true)
	return tc, nil
}

// echoCopy copies src to dst until EOF; the byte at offset corruptAt (if >= 0)
// is flipped, to prove that the checkers catch corruption.
func echoCopy(dst io.Writer, src io.Reader, corruptAt int64) (int64, error) {
	buf := make([]byte, 64*1024)
	var off int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if corruptAt >= off && corruptAt < off+int64(n) {
				buf[corruptAt-off] ^= 0xff
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return off, fmt.Errorf("write: %v", werr)
			}
			off += int64(n)
		}
		if rerr == io.EOF {
			return off, nil
		}
		if rerr != nil {
			return off, fmt.Errorf("read: %v", rerr)
		}
	}
}

// ---------------------------------------------------------------------------
// server

func runServer(args []string) int {
	const tool = "server"
	fs := newFlagSet(tool)
	listen := fs.String("listen", "", "`HOST:PORT` to accept yamux links on (required)")
	var window uint64
	fs.Uint64Var(&window, "window", 256*1024, "MaxStreamWindowSize: per-stream receive window in `BYTES` (>= 262144)")
	fs.Uint64Var(&window, "max-stream-window", 256*1024, "same as --window")
	backlog := fs.Int("backlog", 256, "AcceptBacklog: streams waiting for Accept before new SYNs get RST")
	acceptDelay := fs.Duration("accept-delay", 0, "sleep this long before each AcceptStream (a slow application: Go ACKs only on Accept)")
	keepalive := fs.Duration("keepalive", 30*time.Second, "keep-alive ping interval (0 disables)")
	corruptAt := fs.Int64("corrupt-at", -1, "self-test: flip the echoed byte at this `OFFSET` of every stream")
	verbose := fs.Bool("v", false, "log one line per link and per stream to stderr")
	if !parseFlags(fs, args) {
		return 2
	}
	if *listen == "" {
		return usageErr(tool, "--listen is required")
	}
	cfg, err := yamuxConfig(tool, window, *backlog, *keepalive)
	if err != nil {
		return usageErr(tool, "%v", err)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: listen: %v\n", tool, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: listening on %s (window %d)\n", tool, ln.Addr(), window)
	var links int
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: accept: %v\n", tool, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		links++
		go serveLink(links, c.(*net.TCPConn), cfg, *acceptDelay, *corruptAt, *verbose)
	}
}

func serveLink(link int, c *net.TCPConn, cfg *yamux.Config, acceptDelay time.Duration, corruptAt int64, verbose bool) {
	c.SetNoDelay(true)
	prefix := fmt.Sprintf("server: link %d", link)
	sn := newSniffer(true, func(msg string) {
		fmt.Fprintf(os.Stderr, "%s: protocol note: %s\n", prefix, msg)
	})
	out := newSniffer(false, nil) // what the Go server sends (to log whether it ACKed)
	sess, err := yamux.Server(&sniffConn{c, sn, out}, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", prefix, err)
		c.Close()
		return
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "%s: from %s\n", prefix, c.RemoteAddr())
	}
	var streams int
	for {
		if acceptDelay > 0 {
			time.Sleep(acceptDelay)
		}
		st, err := sess.AcceptStream()
		if err != nil {
			if verbose {
				fmt.Fprintf(os.Stderr, "%s: closed after %d streams (%v); %s\n", prefix, streams, err, sn.summary())
			}
			sess.Close()
			return
		}
		streams++
		go func(st *yamux.Stream) {
			start := time.Now()
			n, err := echoCopy(st, st, corruptAt)
			if err == nil {
				// Read returned EOF: the peer's FIN arrived (this side has not
				// closed yet, so it is a real EOF). Close = half-close (FIN).
				st.Close()
				if verbose {
					ack := "ACK sent"
					if _, _, acks, _, _ := out.status(st.StreamID()); acks == 0 {
						ack = "no ACK sent (peer's FIN came before Accept)"
					}
					fmt.Fprintf(os.Stderr, "%s: stream %d: echoed %d bytes in %v, FIN sent, %s\n",
						prefix, st.StreamID(), n, time.Since(start).Round(time.Microsecond), ack)
				}
			} else {
				st.Close()
				fmt.Fprintf(os.Stderr, "%s: stream %d: error after echoing %d bytes: %v\n", prefix, st.StreamID(), n, err)
			}
			sn.forget(st.StreamID())
			out.forget(st.StreamID())
		}(st)
	}
}

// ---------------------------------------------------------------------------
// client

func runClient(args []string) int {
	const tool = "client"
	fs := newFlagSet(tool)
	connect := fs.String("connect", "", "`HOST:PORT` of the yamux server (required)")
	nStreams := fs.Int("streams", 1, "number of streams")
	nBytes := fs.Int64("bytes", 1<<20, "bytes to send (and expect back) per stream")
	var window uint64
	fs.Uint64Var(&window, "window", 256*1024, "MaxStreamWindowSize: per-stream receive window in `BYTES` (>= 262144); above 262144 the SYN carries the extra window")
	fs.Uint64Var(&window, "max-stream-window", 256*1024, "same as --window")
	conc := fs.Int("concurrency", 0, "streams in flight at once (0 = all)")
	timeout := fs.Duration("timeout", 60*time.Second, "overall time limit")
	chunk := fs.Int("chunk", 1<<20, "bytes per Stream.Write call (Go sends a Write as data frames as large as the send window allows)")
	seed := fs.Uint64("seed", 1, "seed of the pseudo-random data")
	keepalive := fs.Duration("keepalive", 30*time.Second, "keep-alive ping interval (0 disables)")
	trustEOF := fs.Bool("trust-eof", false, "take the library's EOF as is (shows the early-EOF quirk; expect failures)")
	goAway := fs.Bool("goaway", false, "send Go Away (normal) before closing the session (Session.Close alone sends none)")
	requireACK := fs.Bool("require-ack", true, "fail a stream the peer never ACKed (false for a Go server and streams <= 256 KiB: Go skips the ACK when the FIN comes before Accept)")
	verbose := fs.Bool("v", false, "more output on stderr")
	if !parseFlags(fs, args) {
		return 2
	}
	if *connect == "" {
		return usageErr(tool, "--connect is required")
	}
	if *nStreams <= 0 || *nBytes < 0 || *chunk <= 0 {
		return usageErr(tool, "--streams and --chunk must be positive, --bytes not negative")
	}
	cfg, err := yamuxConfig(tool, window, 256, *keepalive)
	if err != nil {
		return usageErr(tool, "%v", err)
	}

	items := newItems("stream", *nStreams)
	sn := newSniffer(false, func(msg string) {
		fmt.Fprintf(os.Stderr, "%s: protocol note: %s\n", tool, msg)
	})
	timer := startTimeout(tool, *timeout, &items, *nBytes, sn.summary)
	defer timer.Stop()

	start := time.Now()
	c, err := dialTCP(*connect, 10*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: FAIL connect: %v\n", tool, err)
		fmt.Printf("%s: FAILED: cannot connect to %s\n", tool, *connect)
		return 1
	}
	sess, err := yamux.Client(&sniffConn{c, sn, nil}, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", tool, err)
		return 1
	}

	var earlyEOF atomic.Int64
	errs := runAll(items, *conc, func(it *item) error {
		it.setPhase("opening")
		st, err := sess.OpenStream()
		if err != nil {
			return fmt.Errorf("open: %v", err)
		}
		id := st.StreamID()
		it.id.Store(id)
		pat := newPattern(*seed, it.index)
		werr := make(chan error, 1)
		go func() {
			err := writePattern(st, pat, *nBytes, *chunk, &it.sent)
			st.Close() // half-close: FIN (on a window update frame)
			werr <- err
		}()
		it.setPhase("echo in progress")
		r := &streamReader{st: st, sess: sess, sn: sn, trustEOF: *trustEOF}
		err = readVerify(r, &verifier{pat: pat, want: *nBytes}, &it.recv)
		earlyEOF.Add(r.earlyEOF)
		if err != nil {
			return err
		}
		it.setPhase("echo complete, waiting for own write to finish")
		if err := <-werr; err != nil {
			return err
		}
		_, rsts, acks, fins, _ := sn.status(id)
		switch {
		case *trustEOF:
		case rsts > 0:
			return fmt.Errorf("peer sent RST")
		case acks > 1 || (acks == 0 && *requireACK):
			return fmt.Errorf("peer sent %d ACKs for this stream (want exactly 1)", acks)
		case fins != 1:
			return fmt.Errorf("peer sent %d FINs for this stream (want exactly 1)", fins)
		}
		return nil
	})
	elapsed := time.Since(start)
	timer.Stop()

	notes := sn.notesCopy()
	if *verbose {
		fmt.Fprintf(os.Stderr, "%s: %s\n", tool, sn.summary())
		fmt.Fprintf(os.Stderr, "%s: early EOFs from the library after its own half-close, worked around: %d\n", tool, earlyEOF.Load())
	}
	if sess.IsClosed() && len(errs) == 0 {
		errs = append(errs, "session: closed by the peer or by an error before the end")
	}
	if *goAway {
		if err := sess.GoAway(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: go away: %v\n", tool, err)
		}
	}
	sess.Close()

	reportErrors(tool, errs)
	for i, n := range notes {
		if i == 10 {
			fmt.Fprintf(os.Stderr, "%s: ... %d protocol notes in all\n", tool, len(notes))
			break
		}
		fmt.Fprintf(os.Stderr, "%s: FAIL protocol: %s\n", tool, n)
	}
	total := int64(*nStreams) * *nBytes
	if len(errs) > 0 || len(notes) > 0 {
		fmt.Printf("%s: FAILED: %d of %d streams x %d bytes failed, %d protocol notes (%v)\n",
			tool, len(errs), *nStreams, *nBytes, len(notes), elapsed.Round(time.Millisecond))
		return 1
	}
	fmt.Printf("%s: %d streams x %d bytes ok in %.2fs (%s each way)\n",
		tool, *nStreams, *nBytes, elapsed.Seconds(), rate(total, elapsed))
	return 0
}

// ---------------------------------------------------------------------------
// tcpload

func runTCPLoad(args []string) int {
	const tool = "tcpload"
	fs := newFlagSet(tool)
	connect := fs.String("connect", "", "`HOST:PORT` to connect to (required)")
	nConns := fs.Int("conns", 1, "number of TCP connections")
	nBytes := fs.Int64("bytes", 1<<20, "bytes to send (and expect back) per connection")
	conc := fs.Int("concurrency", 0, "connections open at once (0 = all)")
	timeout := fs.Duration("timeout", 60*time.Second, "overall time limit")
	chunk := fs.Int("chunk", 256*1024, "bytes per write call")
	seed := fs.Uint64("seed", 1, "seed of the pseudo-random data")
	if !parseFlags(fs, args) {
		return 2
	}
	if *connect == "" {
		return usageErr(tool, "--connect is required")
	}
	if *nConns <= 0 || *nBytes < 0 || *chunk <= 0 {
		return usageErr(tool, "--conns and --chunk must be positive, --bytes not negative")
	}
	items := newItems("conn", *nConns)
	timer := startTimeout(tool, *timeout, &items, *nBytes, nil)
	defer timer.Stop()

	start := time.Now()
	errs := runAll(items, *conc, func(it *item) error {
		it.setPhase("connecting")
		c, err := dialTCP(*connect, 10*time.Second)
		if err != nil {
			return fmt.Errorf("connect: %v", err)
		}
		defer c.Close()
		pat := newPattern(*seed, it.index)
		werr := make(chan error, 1)
		go func() {
			err := writePattern(c, pat, *nBytes, *chunk, &it.sent)
			if err == nil {
				if cerr := c.CloseWrite(); cerr != nil {
					err = fmt.Errorf("half-close: %v", cerr)
				}
			}
			werr <- err
		}()
		it.setPhase("echo in progress")
		if err := readVerify(c, &verifier{pat: pat, want: *nBytes}, &it.recv); err != nil {
			return err
		}
		it.setPhase("echo complete, waiting for own write to finish")
		return <-werr
	})
	elapsed := time.Since(start)
	timer.Stop()
	reportErrors(tool, errs)
	if len(errs) > 0 {
		fmt.Printf("%s: FAILED: %d of %d conns x %d bytes failed (%v)\n",
			tool, len(errs), *nConns, *nBytes, elapsed.Round(time.Millisecond))
		return 1
	}
	fmt.Printf("%s: %d conns x %d bytes ok in %.2fs (%s each way)\n",
		tool, *nConns, *nBytes, elapsed.Seconds(), rate(int64(*nConns)**nBytes, elapsed))
	return 0
}

// ---------------------------------------------------------------------------
// tcpecho

func runTCPEcho(args []string) int {
	const tool = "tcpecho"
	fs := newFlagSet(tool)
	listen := fs.String("listen", "", "`HOST:PORT` to listen on (required)")
	corruptAt := fs.Int64("corrupt-at", -1, "self-test: flip the echoed byte at this `OFFSET` of every connection")
	verbose := fs.Bool("v", false, "log one line per connection to stderr")
	if !parseFlags(fs, args) {
		return 2
	}
	if *listen == "" {
		return usageErr(tool, "--listen is required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: listen: %v\n", tool, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: listening on %s\n", tool, ln.Addr())
	for n := 1; ; n++ {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: accept: %v\n", tool, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func(n int, c *net.TCPConn) {
			defer c.Close()
			c.SetNoDelay(true)
			start := time.Now()
			m, err := echoCopy(c, c, *corruptAt)
			if err == nil {
				err = c.CloseWrite()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: conn %d: error after echoing %d bytes: %v\n", tool, n, m, err)
			} else if *verbose {
				fmt.Fprintf(os.Stderr, "%s: conn %d: echoed %d bytes in %v\n", tool, n, m, time.Since(start).Round(time.Microsecond))
			}
		}(n, c.(*net.TCPConn))
	}
}

// ---------------------------------------------------------------------------
// relay: a Go stand-in for repeaterd, to test run.sh and the other peers.

func runRelay(args []string) int {
	const tool = "relay"
	fs := newFlagSet(tool)
	listen := fs.String("listen", "", "`HOST:PORT` for plain TCP clients (required)")
	backend := fs.String("backend", "", "`HOST:PORT` of the yamux server to dial (required)")
	var window uint64
	fs.Uint64Var(&window, "window", 256*1024, "MaxStreamWindowSize in `BYTES` (>= 262144)")
	keepalive := fs.Duration("keepalive", 30*time.Second, "keep-alive ping interval (0 disables)")
	verbose := fs.Bool("v", false, "log one line per client connection to stderr")
	if !parseFlags(fs, args) {
		return 2
	}
	if *listen == "" || *backend == "" {
		return usageErr(tool, "--listen and --backend are required")
	}
	cfg, err := yamuxConfig(tool, window, 256, *keepalive)
	if err != nil {
		return usageErr(tool, "%v", err)
	}
	lc, err := dialTCP(*backend, 10*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: dial backend: %v\n", tool, err)
		return 1
	}
	sn := newSniffer(false, func(msg string) {
		fmt.Fprintf(os.Stderr, "%s: protocol note: %s\n", tool, msg)
	})
	sess, err := yamux.Client(&sniffConn{lc, sn, nil}, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", tool, err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: listen: %v\n", tool, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: listening on %s, link to %s\n", tool, ln.Addr(), *backend)
	go func() {
		<-sess.CloseChan()
		fmt.Fprintf(os.Stderr, "%s: yamux link closed; exiting\n", tool)
		os.Exit(1)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: accept: %v\n", tool, err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go relayConn(c.(*net.TCPConn), sess, sn, *verbose)
	}
}

func relayConn(c *net.TCPConn, sess *yamux.Session, sn *sniffer, verbose bool) {
	defer c.Close()
	c.SetNoDelay(true)
	st, err := sess.OpenStream()
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: open stream: %v\n", err)
		return
	}
	id := st.StreamID()
	defer sn.forget(id)
	start := time.Now()
	var up int64
	var upErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		up, upErr = io.CopyBuffer(st, c, make([]byte, 64*1024))
		st.Close() // FIN (this library has no RST for an aborted client)
	}()
	r := &streamReader{st: st, sess: sess, sn: sn}
	down, downErr := io.CopyBuffer(c, r, make([]byte, 64*1024))
	if downErr == nil {
		c.CloseWrite()
	} else {
		c.Close() // unblocks the upstream copy
	}
	<-done
	if verbose || downErr != nil || (upErr != nil && !errors.Is(upErr, net.ErrClosed)) {
		fmt.Fprintf(os.Stderr, "relay: stream %d: %d bytes up (%v), %d down (%v) in %v, %d early EOFs worked around\n",
			id, up, errString(upErr), down, errString(downErr), time.Since(start).Round(time.Microsecond), r.earlyEOF)
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.TrimSpace(err.Error())
}
