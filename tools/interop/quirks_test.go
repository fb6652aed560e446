package main

// These tests pin down, by running it, how Debian's hashicorp/yamux
// (0.0+git20190923.df201c7) behaves on the wire. Each test drives one Go
// session from a raw-frame peer over loopback TCP. docs/INTEROP.md cites them.
//
// Run: GOPROXY=off GOFLAGS=-mod=mod go test -v -run Go ./
//
// Line references are to /usr/share/gocode/src/github.com/hashicorp/yamux.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

type frame struct {
	ver, typ uint8
	flags    uint16
	id       uint32
	length   uint32
	payload  []byte
}

func (f frame) String() string {
	names := []string{"Data", "WindowUpdate", "Ping", "GoAway"}
	name := fmt.Sprintf("type%d", f.typ)
	if int(f.typ) < len(names) {
		name = names[f.typ]
	}
	var fl []string
	for i, n := range []string{"SYN", "ACK", "FIN", "RST"} {
		if f.flags&(1<<i) != 0 {
			fl = append(fl, n)
		}
	}
	return fmt.Sprintf("%s[%s] id=%d len=%d", name, strings.Join(fl, "|"), f.id, f.length)
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// raw is the hand-driven peer.
type raw struct {
	t *testing.T
	c net.Conn
}

func (r *raw) send(typ uint8, flags uint16, id, length uint32, payload []byte) {
	r.t.Helper()
	h := make([]byte, 12, 12+len(payload))
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	binary.BigEndian.PutUint32(h[8:12], length)
	if _, err := r.c.Write(append(h, payload...)); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

func (r *raw) data(flags uint16, id uint32, payload []byte) {
	r.t.Helper()
	r.send(typeData, flags, id, uint32(len(payload)), payload)
}

func (r *raw) next(d time.Duration) (frame, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	var h [12]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{ver: h[0], typ: h[1], flags: binary.BigEndian.Uint16(h[2:4]),
		id: binary.BigEndian.Uint32(h[4:8]), length: binary.BigEndian.Uint32(h[8:12])}
	if f.typ == typeData && f.length > 0 {
		f.payload = make([]byte, f.length)
		if _, err := io.ReadFull(r.c, f.payload); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (r *raw) expect(typ uint8, flags uint16, id, length uint32) frame {
	r.t.Helper()
	f, err := r.next(2 * time.Second)
	if err != nil {
		r.t.Fatalf("want %v, got error %v", frame{typ: typ, flags: flags, id: id, length: length}, err)
	}
	if f.ver != 0 || f.typ != typ || f.flags != flags || f.id != id || f.length != length {
		r.t.Fatalf("want %v, got %v", frame{typ: typ, flags: flags, id: id, length: length}, f)
	}
	return f
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectNone asserts that nothing arrives for d.
func (r *raw) expectNone(d time.Duration) {
	r.t.Helper()
	f, err := r.next(d)
	if err == nil {
		r.t.Fatalf("want no frame, got %v", f)
	}
	if !isTimeout(err) {
		r.t.Fatalf("want no frame, got connection error %v", err)
	}
}

// expectClosed reads until the Go side closes the TCP connection and returns
// the frames it sent before closing.
func (r *raw) expectClosed(d time.Duration) []frame {
	r.t.Helper()
	var frames []frame
	deadline := time.Now().Add(d)
	for {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			if isTimeout(err) {
				r.t.Fatalf("connection not closed within %v (frames: %v)", d, frames)
			}
			return frames
		}
		frames = append(frames, f)
	}
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// newGo starts a Go session (server or client) facing a raw peer.
func newGo(t *testing.T, server bool, mod func(*yamux.Config)) (*yamux.Session, *raw, *logBuf) {
	t.Helper()
	a, b := tcpPair(t)
	lb := &logBuf{}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.LogOutput = lb
	if mod != nil {
		mod(cfg)
	}
	var s *yamux.Session
	var err error
	if server {
		s, err = yamux.Server(a, cfg)
	} else {
		s, err = yamux.Client(a, cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		b.Close()
		if testing.Verbose() && lb.String() != "" {
			t.Logf("go-yamux log:\n%s", lb.String())
		}
	})
	return s, &raw{t: t, c: b}, lb
}

func window(n uint32) func(*yamux.Config) {
	return func(c *yamux.Config) { c.MaxStreamWindowSize = n }
}

func readN(t *testing.T, st *yamux.Stream, n int) []byte {
	t.Helper()
	st.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, n)
	if _, err := io.ReadFull(st, buf); err != nil {
		t.Fatalf("Go read %d bytes: %v", n, err)
	}
	return buf
}

func acceptGo(t *testing.T, s *yamux.Session) *yamux.Stream {
	t.Helper()
	ch := make(chan *yamux.Stream, 1)
	go func() {
		st, err := s.AcceptStream()
		if err != nil {
			t.Errorf("accept: %v", err)
		}
		ch <- st
	}()
	select {
	case st := <-ch:
		if st == nil {
			t.FailNow()
		}
		return st
	case <-time.After(2 * time.Second):
		t.Fatal("AcceptStream timed out")
	}
	return nil
}

// The opener's SYN travels on a Window Update whose delta is
// MaxStreamWindowSize-256 KiB; data follows at once without waiting for ACK,
// and data frames never carry SYN. (session.go:187, stream.go:222-271)
func TestGoOpenSendsSYNOnWindowUpdate(t *testing.T) {
	for _, w := range []uint32{256 * 1024, 1 << 20} {
		sess, r, _ := newGo(t, false, window(w))
		st, err := sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		r.expect(typeWindow, flagSYN, 1, w-256*1024)
		st.Write([]byte("hello"))
		f := r.expect(typeData, 0, 1, 5)
		if string(f.payload) != "hello" {
			t.Fatalf("payload %q", f.payload)
		}
		if _, err := sess.OpenStream(); err != nil {
			t.Fatal(err)
		}
		r.expect(typeWindow, flagSYN, 3, w-256*1024)
	}
}

// The acceptor answers SYN with ACK only when its application calls
// AcceptStream; the ACK is a Window Update carrying MaxStreamWindowSize-256 KiB.
// Data sent before the ACK is buffered. (session.go:209-221, 583-620)
func TestGoAcksOnlyOnAccept(t *testing.T) {
	for _, w := range []uint32{256 * 1024, 1 << 20} {
		sess, r, _ := newGo(t, true, window(w))
		r.send(typeWindow, flagSYN, 1, 0, nil)
		r.data(0, 1, []byte("abc"))
		r.expectNone(300 * time.Millisecond)
		st := acceptGo(t, sess)
		r.expect(typeWindow, flagACK, 1, w-256*1024)
		if got := readN(t, st, 3); string(got) != "abc" {
			t.Fatalf("read %q", got)
		}
		st.Write([]byte("xy"))
		r.expect(typeData, 0, 1, 2) // no ACK on later frames
	}
}

// SYN and FIN are honoured on data frames too (with payload), SYN|FIN together
// as well. QUIRK: if the opener's FIN arrives before the application accepts,
// the stream is never ACKed: Accept's window update has no flag to carry and
// a zero delta, so it is skipped, and the later Close sends a bare FIN.
// (session.go:487-491, stream.go:222-235, 256-259, 351-359, 396-436)
func TestGoAcceptsSYNAndFINOnDataFrames(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.data(flagSYN, 1, []byte("hello"))
	st := acceptGo(t, sess)
	r.expect(typeWindow, flagACK, 1, 0)
	if got := readN(t, st, 5); string(got) != "hello" {
		t.Fatalf("read %q", got)
	}
	r.data(flagFIN, 1, []byte("x"))
	if got := readN(t, st, 1); string(got) != "x" {
		t.Fatalf("read %q", got)
	}
	if n, err := st.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("want EOF, got %d %v", n, err)
	}

	r.data(flagSYN|flagFIN, 3, []byte("y"))
	st3 := acceptGo(t, sess)
	r.expectNone(200 * time.Millisecond) // no ACK
	if got := readN(t, st3, 1); string(got) != "y" {
		t.Fatalf("read %q", got)
	}
	if _, err := st3.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	st3.Write([]byte("reply"))
	r.expect(typeData, 0, 3, 5) // data without ACK
	st3.Close()
	r.expect(typeWindow, flagFIN, 3, 0) // FIN without ACK

	// Same with SYN and FIN on separate frames, before Accept.
	r.send(typeWindow, flagSYN, 5, 0, nil)
	r.send(typeWindow, flagFIN, 5, 0, nil)
	time.Sleep(50 * time.Millisecond)
	st5 := acceptGo(t, sess)
	r.expectNone(200 * time.Millisecond)
	st5.Close()
	r.expect(typeWindow, flagFIN, 5, 0)
}

// An ACK on a data frame (with payload) establishes the stream just as well.
// (stream.go:345-350, 396-399)
func TestGoAcceptsACKOnDataFrame(t *testing.T) {
	sess, r, _ := newGo(t, false, func(c *yamux.Config) { c.AcceptBacklog = 1 })
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 0)
	r.data(flagACK, 1, []byte("hi"))
	if got := readN(t, st, 2); string(got) != "hi" {
		t.Fatalf("read %q", got)
	}
	// The SYN semaphore (backlog 1) was released by that ACK: a 2nd open works.
	done := make(chan error, 1)
	go func() { _, err := sess.OpenStream(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("second OpenStream blocked: ACK on a data frame not counted")
	}
}

// Stream.Close is a half-close: a Window Update with FIN and length 0, never
// RST; the stream still receives afterwards. (stream.go:273-322)
func TestGoCloseIsFINOnWindowUpdate(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.send(typeWindow, flagSYN, 1, 0, nil)
	st := acceptGo(t, sess)
	r.expect(typeWindow, flagACK, 1, 0)
	st.Close()
	r.expect(typeWindow, flagFIN, 1, 0)
	r.data(0, 1, []byte("more"))
	time.Sleep(50 * time.Millisecond) // else Read may hit the early EOF (next test)
	if got := readN(t, st, 4); string(got) != "more" {
		t.Fatalf("read %q", got)
	}
	if _, err := st.Write([]byte("z")); err != yamux.ErrStreamClosed {
		t.Fatalf("write after Close: want ErrStreamClosed, got %v", err)
	}
	r.send(typeWindow, flagFIN, 1, 0, nil)
	time.Sleep(50 * time.Millisecond)
	if n := sess.NumStreams(); n != 0 {
		t.Fatalf("stream not released after both FINs: %d streams", n)
	}
	r.expectNone(200 * time.Millisecond)
}

// THE QUIRK: after its own Close, Stream.Read returns io.EOF whenever its
// buffer is empty, although the peer has not sent FIN; data arriving later is
// still returned by later Reads. (stream.go:90-101)
func TestGoEarlyEOFAfterOwnClose(t *testing.T) {
	sess, r, _ := newGo(t, false, nil)
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 0)
	st.Write([]byte("ping"))
	r.expect(typeData, 0, 1, 4)
	st.Close()
	r.expect(typeWindow, flagFIN, 1, 0)

	st.SetReadDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	n, err := st.Read(make([]byte, 16))
	if n != 0 || err != io.EOF || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("expected the early EOF quirk, got n=%d err=%v after %v", n, err, time.Since(start))
	}
	r.send(typeWindow, flagACK, 1, 0, nil)
	r.data(0, 1, []byte("pong"))
	time.Sleep(50 * time.Millisecond)
	buf := make([]byte, 16)
	n, err = st.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("data after the early EOF: got %q %v", buf[:n], err)
	}
	r.send(typeWindow, flagFIN, 1, 0, nil)
	time.Sleep(50 * time.Millisecond)
	if _, err := st.Read(buf); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

// Window updates keep coming after the Go side sent FIN, and even after both
// FINs when the application reads data still buffered: a peer must accept
// (ignore) window updates for streams it already forgot. (stream.go:116-122)
func TestGoWindowUpdatesAfterClose(t *testing.T) {
	sess, r, _ := newGo(t, false, nil)
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 0)
	st.Close()
	r.expect(typeWindow, flagFIN, 1, 0)
	r.send(typeWindow, flagACK, 1, 0, nil)
	r.data(0, 1, make([]byte, 200*1024))
	r.send(typeWindow, flagFIN, 1, 0, nil)
	time.Sleep(50 * time.Millisecond)
	if n := sess.NumStreams(); n != 0 {
		t.Fatalf("want stream gone after both FINs, %d left", n)
	}
	got := 0
	buf := make([]byte, 32*1024)
	for {
		n, err := st.Read(buf)
		got += n
		if err != nil {
			break
		}
	}
	if got != 200*1024 {
		t.Fatalf("read %d", got)
	}
	// Updates are sent once >= 128 KiB are consumed: 131072, then nothing
	// until the next 128 KiB.
	r.expect(typeWindow, 0, 1, 128*1024)
	r.expectNone(200 * time.Millisecond)
}

// Receive-window accounting: the initial window is 256 KiB whatever the
// config says; a Window Update is sent only once the application has consumed
// (read, not merely received) at least MaxStreamWindowSize/2 since the last
// one; its delta is everything consumed. (stream.go:239-271)
func TestGoWindowUpdateThreshold(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.send(typeWindow, flagSYN, 1, 0, nil)
	st := acceptGo(t, sess)
	r.expect(typeWindow, flagACK, 1, 0)

	r.data(0, 1, make([]byte, 131071))
	r.expectNone(200 * time.Millisecond) // received, not read
	readN(t, st, 131071)
	r.expectNone(200 * time.Millisecond) // 131071 < 131072
	r.data(0, 1, make([]byte, 1))
	r.expectNone(200 * time.Millisecond)
	readN(t, st, 1)
	r.expect(typeWindow, 0, 1, 131072)

	// With a 1 MiB window the ACK grants 768 KiB and the threshold is 512 KiB.
	sess2, r2, _ := newGo(t, true, window(1<<20))
	r2.send(typeWindow, flagSYN, 1, 0, nil)
	st2 := acceptGo(t, sess2)
	r2.expect(typeWindow, flagACK, 1, 768*1024)
	r2.data(0, 1, make([]byte, 512*1024-1))
	readN(t, st2, 512*1024-1)
	r2.expectNone(200 * time.Millisecond)
	r2.data(0, 1, make([]byte, 1))
	readN(t, st2, 1)
	r2.expect(typeWindow, 0, 1, 512*1024)
}

// The Go sender starts with a 256 KiB send window (regardless of its own
// MaxStreamWindowSize), adds every delta it receives, and sends one Write as
// data frames as large as the window allows. (stream.go:65-66, 159-202, 384-393)
func TestGoInitialSendWindowAndFrameSize(t *testing.T) {
	sess, r, _ := newGo(t, false, window(1<<20))
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 768*1024)
	r.send(typeWindow, flagACK, 1, 0, nil)
	go st.Write(make([]byte, 1<<20))
	r.expect(typeData, 0, 1, 256*1024)
	r.expectNone(300 * time.Millisecond)
	r.send(typeWindow, 0, 1, 100000, nil)
	r.expect(typeData, 0, 1, 100000)
	r.send(typeWindow, 0, 1, 1<<20, nil)
	r.expect(typeData, 0, 1, 1<<20-256*1024-100000)
}

// More data than the window: the Go side queues Go Away (protocol error) and
// closes the TCP connection at once, so the Go Away may or may not get out.
// (stream.go:413-416, session.go:524-530)
func TestGoRecvWindowExceeded(t *testing.T) {
	_, r, lb := newGo(t, true, nil)
	r.data(flagSYN, 1, make([]byte, 256*1024+1))
	frames := r.expectClosed(2 * time.Second)
	t.Logf("frames before close: %v", frames)
	if !strings.Contains(lb.String(), "receive window exceeded") {
		t.Fatalf("log: %s", lb.String())
	}
}

// Frames for unknown streams: data is read and discarded with a warning, a
// window update is ignored with a warning; no RST, the session lives on.
// (session.go:493-511)
func TestGoUnknownStream(t *testing.T) {
	_, r, lb := newGo(t, true, nil)
	r.data(0, 77, []byte("0123456789"))
	r.send(typeWindow, 0, 79, 5, nil)
	r.send(typeWindow, flagFIN, 81, 0, nil)
	r.send(typePing, flagSYN, 0, 42, nil)
	r.expect(typePing, flagACK, 0, 42) // first frame back: no RST before it
	log := lb.String()
	if !strings.Contains(log, "Discarding data for stream: 77") || !strings.Contains(log, "frame for missing stream") {
		t.Fatalf("log: %s", log)
	}
}

// A bad version or type closes the TCP connection without Go Away.
// (session.go:465-474)
func TestGoBadVersionOrType(t *testing.T) {
	for _, h := range [][]byte{
		{1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}, // version 1
		{0, 4, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}, // type 4
	} {
		_, r, _ := newGo(t, true, nil)
		r.c.Write(h)
		if frames := r.expectClosed(2 * time.Second); len(frames) != 0 {
			t.Fatalf("frames before close: %v", frames)
		}
	}
}

// Ping: a SYN is answered with ACK carrying the same opaque value, always on
// stream 0 (the request's stream id is ignored); an unsolicited ACK is
// ignored. (session.go:534-561)
func TestGoPingReply(t *testing.T) {
	_, r, _ := newGo(t, true, nil)
	r.send(typePing, flagSYN, 0, 0xdeadbeef, nil)
	r.expect(typePing, flagACK, 0, 0xdeadbeef)
	r.send(typePing, flagSYN, 5, 7, nil)
	r.expect(typePing, flagACK, 0, 7)
	r.send(typePing, flagACK, 0, 99, nil)
	r.expectNone(200 * time.Millisecond)
}

// Keep-alive: every KeepAliveInterval (default 30 s) a Ping SYN on stream 0
// with values 0, 1, 2...; no reply within ConnectionWriteTimeout (default
// 10 s) closes the connection, without Go Away. (session.go:273-327)
func TestGoKeepAlive(t *testing.T) {
	_, r, lb := newGo(t, false, func(c *yamux.Config) {
		c.EnableKeepAlive = true
		c.KeepAliveInterval = 200 * time.Millisecond
		c.ConnectionWriteTimeout = 300 * time.Millisecond
	})
	r.expect(typePing, flagSYN, 0, 0)
	r.send(typePing, flagACK, 0, 0, nil)
	r.expect(typePing, flagSYN, 0, 1)
	// no reply this time
	if frames := r.expectClosed(2 * time.Second); len(frames) != 0 {
		t.Fatalf("frames before close: %v", frames)
	}
	if !strings.Contains(lb.String(), "keepalive failed") {
		t.Fatalf("log: %s", lb.String())
	}
}

// RST: the stream is dropped at once; Read returns ErrConnectionReset even if
// data is still buffered (it is lost); Write too; nothing is sent back.
// (stream.go:103-105, 173-175, 369-373)
func TestGoRST(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.data(flagSYN, 1, []byte("abc"))
	st := acceptGo(t, sess)
	r.expect(typeWindow, flagACK, 1, 0)
	r.send(typeWindow, flagRST, 1, 0, nil)
	time.Sleep(50 * time.Millisecond)
	if _, err := st.Read(make([]byte, 8)); err != yamux.ErrConnectionReset {
		t.Fatalf("read: want ErrConnectionReset, got %v", err)
	}
	if _, err := st.Write([]byte("x")); err != yamux.ErrConnectionReset {
		t.Fatalf("write: want ErrConnectionReset, got %v", err)
	}
	st.Close()
	r.expectNone(200 * time.Millisecond)
	if n := sess.NumStreams(); n != 0 {
		t.Fatalf("%d streams left", n)
	}
}

// Go Away received: code 0 stops new opens (ErrRemoteGoAway) while existing
// streams carry on; codes 1, 2 and unknown codes close the connection at once
// (no reply). (session.go:154-161, 563-580)
func TestGoGoAwayReceived(t *testing.T) {
	sess, r, _ := newGo(t, false, nil)
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 0)
	r.send(typeWindow, flagACK, 1, 0, nil)
	r.send(typeGoAway, 0, 0, 0, nil)
	time.Sleep(50 * time.Millisecond)
	if _, err := sess.OpenStream(); err != yamux.ErrRemoteGoAway {
		t.Fatalf("open after Go Away: %v", err)
	}
	st.Write([]byte("still"))
	r.expect(typeData, 0, 1, 5)
	r.data(0, 1, []byte("fine"))
	readN(t, st, 4)

	for _, code := range []uint32{1, 2, 7} {
		_, r, _ := newGo(t, false, nil)
		r.send(typeGoAway, 0, 0, code, nil)
		if frames := r.expectClosed(2 * time.Second); len(frames) != 0 {
			t.Fatalf("code %d: frames before close: %v", code, frames)
		}
	}
}

// Session.Close sends no Go Away (despite its comment); Session.GoAway sends
// Go Away 0 and from then on every SYN is answered with RST on a Window
// Update. (session.go:223-271, 583-589)
func TestGoCloseAndGoAwaySent(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	sess.Close()
	if frames := r.expectClosed(2 * time.Second); len(frames) != 0 {
		t.Fatalf("frames before close: %v", frames)
	}

	sess2, r2, _ := newGo(t, true, nil)
	if err := sess2.GoAway(); err != nil {
		t.Fatal(err)
	}
	r2.expect(typeGoAway, 0, 0, 0)
	r2.data(flagSYN, 1, []byte("abc"))
	r2.expect(typeWindow, flagRST, 1, 0)
}

// A second FIN on a stream is a protocol error: Go Away 1 is queued and the
// connection closed. (stream.go:351-367, session.go:514-530)
func TestGoDuplicateFIN(t *testing.T) {
	_, r, lb := newGo(t, true, nil)
	r.send(typeWindow, flagSYN, 1, 0, nil)
	r.send(typeWindow, flagFIN, 1, 0, nil)
	r.send(typeWindow, flagFIN, 1, 0, nil)
	frames := r.expectClosed(2 * time.Second)
	t.Logf("frames before close: %v", frames)
	if !strings.Contains(lb.String(), "unexpected FIN flag") {
		t.Fatalf("log: %s", lb.String())
	}
}

// A SYN for an id in use is a protocol error: Go Away 1, connection closed.
// (session.go:597-604)
func TestGoDuplicateSYN(t *testing.T) {
	_, r, lb := newGo(t, true, nil)
	r.send(typeWindow, flagSYN, 1, 0, nil)
	r.send(typeWindow, flagSYN, 1, 0, nil)
	frames := r.expectClosed(2 * time.Second)
	t.Logf("frames before close: %v", frames)
	if !strings.Contains(lb.String(), "duplicate stream declared") {
		t.Fatalf("log: %s", lb.String())
	}
}

// Every ACK, not just the first, runs establishStream: a repeated ACK logs
// an error and frees a slot of the SYN semaphore it never took; the session
// lives on. (stream.go:345-350, session.go:640-653)
func TestGoDuplicateACK(t *testing.T) {
	sess, r, lb := newGo(t, false, nil)
	st, _ := sess.OpenStream()
	r.expect(typeWindow, flagSYN, 1, 0)
	r.send(typeWindow, flagACK, 1, 0, nil)
	r.send(typeWindow, flagACK, 1, 0, nil)
	r.send(typePing, flagSYN, 0, 1, nil)
	r.expect(typePing, flagACK, 0, 1)
	if !strings.Contains(lb.String(), "established stream without inflight SYN") {
		t.Fatalf("log: %s", lb.String())
	}
	st.Write([]byte("ok"))
	r.expect(typeData, 0, 1, 2)
}

// More than AcceptBacklog (default 256) streams waiting for AcceptStream: the
// next SYN is refused with RST on a Window Update. (session.go:609-619)
func TestGoBacklogRST(t *testing.T) {
	_, r, _ := newGo(t, true, func(c *yamux.Config) { c.AcceptBacklog = 2 })
	r.send(typeWindow, flagSYN, 1, 0, nil)
	r.send(typeWindow, flagSYN, 3, 0, nil)
	r.send(typeWindow, flagSYN, 5, 0, nil)
	r.expect(typeWindow, flagRST, 5, 0)
}

// The Go opener allows at most AcceptBacklog (default 256) streams without
// ACK: the next OpenStream blocks until an ACK (or the stream's end) arrives.
// A peer that never ACKs stalls a Go client after 256 streams. (session.go:163-168)
func TestGoOpenBlocksWithoutACK(t *testing.T) {
	sess, r, _ := newGo(t, false, func(c *yamux.Config) { c.AcceptBacklog = 4 })
	for i := uint32(0); i < 4; i++ {
		if _, err := sess.OpenStream(); err != nil {
			t.Fatal(err)
		}
		r.expect(typeWindow, flagSYN, 1+2*i, 0)
	}
	done := make(chan error, 1)
	go func() { _, err := sess.OpenStream(); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("5th OpenStream did not block (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	r.send(typeWindow, flagACK, 1, 0, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("5th OpenStream still blocked after an ACK")
	}
	r.expect(typeWindow, flagSYN, 9, 0)
}

// No check of stream id parity (nor of id 0) on incoming SYNs.
// (session.go:583-620)
func TestGoNoParityCheck(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.send(typeWindow, flagSYN, 2, 0, nil)
	st := acceptGo(t, sess)
	if st.StreamID() != 2 {
		t.Fatalf("id %d", st.StreamID())
	}
	r.expect(typeWindow, flagACK, 2, 0)
}

// When the link dies (TCP closed, no Go Away), every stream is force-closed:
// Read returns io.EOF - not an error - once its buffer is drained, so a Go
// application cannot tell a lost link from the peer's FIN. (session.go:225-246,
// stream.go:325-330, 90-101)
func TestGoLinkLossLooksLikeEOF(t *testing.T) {
	sess, r, _ := newGo(t, true, nil)
	r.data(flagSYN, 1, []byte("abc"))
	st := acceptGo(t, sess)
	r.expect(typeWindow, flagACK, 1, 0)
	r.c.Close()
	time.Sleep(50 * time.Millisecond)
	if got := readN(t, st, 3); string(got) != "abc" {
		t.Fatalf("read %q", got)
	}
	if _, err := st.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("want io.EOF after link loss, got %v", err)
	}
	if _, err := st.Write([]byte("x")); err == nil {
		t.Fatal("write after link loss succeeded")
	}
}
