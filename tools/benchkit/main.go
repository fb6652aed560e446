// benchkit: small helpers for tools/bench (standard library only, builds offline).
//
//	benchkit echo     -listen ADDR [-blocking]             echo server (TCP_NODELAY; -blocking: blocking syscalls, see below)
//	benchkit connrate -target ADDR -duration S -c N        new connections per second, one 64-byte exchange each
//	benchkit delay    -listen ADDR -target ADDR -delay-ms D one-way delay D per direction (RTT = 2·D)
//	benchkit scale    -target ADDR -n N -pid PID           N concurrent sessions: open rate, RSS of PID, active-session latency
//	benchkit pingpong -target ADDR -size B -duration S     one connection, write B bytes / read B back in a loop: round-trip percentiles
//
// Every command prints one JSON object on stdout when it has a result.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "benchkit: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func main() {
	if len(os.Args) < 2 {
		die("usage: benchkit echo|connrate|delay|scale|pingpong|sessions [flags]")
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "echo":
		echoMain(args)
	case "connrate":
		connrateMain(args)
	case "delay":
		delayMain(args)
	case "scale":
		scaleMain(args)
	case "pingpong":
		pingpongMain(args)
	case "sessions":
		sessionsMain(args)
	default:
		die("unknown command %q", cmd)
	}
}

// ---------------------------------------------------------------- echo

func echoMain(args []string) {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	blocking := fs.Bool("blocking", false, "serve each connection with blocking raw read/write syscalls (for pinned SCHED_FIFO ping-pong, "+
		"where the runtime's netpoller and syscall handoffs add ~90 µs per round trip; one connection at a time "+
		"when pinned to one CPU)")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		die("listen: %v", err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		if *blocking {
			go echoBlocking(c.(*net.TCPConn))
			continue
		}
		go func(c net.Conn) {
			defer c.Close()
			c.(*net.TCPConn).SetNoDelay(true)
			buf := make([]byte, 64*1024)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}(c)
	}
}

// echoBlocking serves one connection with blocking raw syscalls (see rawRead): (*os.File).Fd puts the
// duplicated descriptor in blocking mode, so the thread sleeps in read(2) and is woken by the kernel
// directly, as a C server's would be. For the pinned single-connection ping-pong; while one connection
// is open, a pinned (GOMAXPROCS=1) -blocking server does not accept the next.
func echoBlocking(c *net.TCPConn) {
	c.SetNoDelay(true)
	f, err := c.File()
	c.Close()
	if err != nil {
		return
	}
	defer f.Close()
	fd := int(f.Fd())
	buf := make([]byte, 64*1024)
	for {
		n, err := rawRead(fd, buf)
		if n <= 0 || err != nil {
			return
		}
		for off := 0; off < n; {
			w, err := rawWrite(fd, buf[off:n])
			if err != nil {
				return
			}
			off += w
		}
	}
}

// ---------------------------------------------------------------- connrate

func oneExchange(target string, msg, reply []byte) error {
	c, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.(*net.TCPConn).SetNoDelay(true)
	return exchange(c, msg, reply)
}

// exchange writes msg and reads len(reply) bytes back.
func exchange(c net.Conn, msg, reply []byte) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c, reply)
	return err
}

func connrateMain(args []string) {
	fs := flag.NewFlagSet("connrate", flag.ExitOnError)
	target := fs.String("target", "", "address")
	duration := fs.Float64("duration", 3, "seconds")
	conc := fs.Int("c", 8, "concurrent clients")
	size := fs.Int("size", 64, "bytes per exchange")
	fs.Parse(args)
	var ok, failed int64
	deadline := time.Now().Add(time.Duration(*duration * float64(time.Second)))
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := make([]byte, *size)
			reply := make([]byte, *size)
			for time.Now().Before(deadline) {
				if err := oneExchange(*target, msg, reply); err != nil {
					atomic.AddInt64(&failed, 1)
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(time.Millisecond)
				} else {
					atomic.AddInt64(&ok, 1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	e, _ := firstErr.Load().(string)
	emit(map[string]interface{}{"connections": ok, "failed": failed, "seconds": el, "per_second": float64(ok) / el, "first_error": e})
}

// ---------------------------------------------------------------- delay

type chunk struct {
	due  time.Time
	data []byte
}

// pump reads src eagerly, stamps each read with its due time and a writer goroutine releases it to dst
// when due. In-flight bytes are capped (like a receive window) so memory stays bounded.
func pump(src, dst *net.TCPConn, delay time.Duration, capBytes int64) {
	q := make(chan chunk, 65536)
	var inflight int64
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	go func() {
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(ch.data); err != nil {
				break
			}
			mu.Lock()
			inflight -= int64(len(ch.data))
			cond.Broadcast()
			mu.Unlock()
		}
		dst.CloseWrite()
		for range q {
		}
	}()
	buf := make([]byte, 256*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			data := make([]byte, n)
			copy(data, buf[:n])
			mu.Lock()
			for inflight > capBytes {
				cond.Wait()
			}
			inflight += int64(n)
			mu.Unlock()
			q <- chunk{time.Now().Add(delay), data}
		}
		if err != nil {
			break
		}
	}
	close(q)
}

func delayMain(args []string) {
	fs := flag.NewFlagSet("delay", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	target := fs.String("target", "", "address")
	delayMs := fs.Float64("delay-ms", 0, "one-way delay per direction, ms")
	capMiB := fs.Int64("cap-mib", 16, "bytes in flight per direction, MiB")
	fs.Parse(args)
	delay := time.Duration(*delayMs * float64(time.Millisecond))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		die("listen: %v", err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go func(a *net.TCPConn) {
			b0, err := net.Dial("tcp", *target)
			if err != nil {
				a.Close()
				return
			}
			b := b0.(*net.TCPConn)
			a.SetNoDelay(true)
			b.SetNoDelay(true)
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { pump(a, b, delay, *capMiB<<20); wg.Done() }()
			go func() { pump(b, a, delay, *capMiB<<20); wg.Done() }()
			wg.Wait()
			a.Close()
			b.Close()
		}(c.(*net.TCPConn))
	}
}

// ---------------------------------------------------------------- scale

func rssKiB(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

func pingPong(c net.Conn, n int) []float64 {
	msg := make([]byte, 64)
	reply := make([]byte, 64)
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if err := exchange(c, msg, reply); err != nil {
			die("ping-pong: %v", err)
		}
		out = append(out, float64(time.Since(t).Nanoseconds())/1000)
	}
	sort.Float64s(out)
	return out
}

func pct(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(s)))
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func latencyOf(target string, n int) map[string]float64 {
	c, err := net.Dial("tcp", target)
	if err != nil {
		die("dial: %v", err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetNoDelay(true)
	pingPong(c, 200) // warm up
	s := pingPong(c, n)
	return map[string]float64{"p50_us": pct(s, 50), "p99_us": pct(s, 99), "p999_us": pct(s, 99.9)}
}

func scaleMain(args []string) {
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	target := fs.String("target", "", "address")
	n := fs.Int("n", 10000, "sessions")
	conc := fs.Int("c", 64, "concurrent dialers")
	pid := fs.Int("pid", 0, "process whose RSS to read")
	pings := fs.Int("pings", 5000, "exchanges of the active session")
	fs.Parse(args)
	before := latencyOf(*target, *pings)
	time.Sleep(300 * time.Millisecond)
	rss0 := rssKiB(*pid)
	conns := make([]net.Conn, *n)
	var next int64 = -1
	var failed int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte("hello, repeater!")
			reply := make([]byte, len(msg))
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= *n {
					return
				}
				c, err := net.DialTimeout("tcp", *target, 10*time.Second)
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				c.(*net.TCPConn).SetNoDelay(true)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(msg); err == nil {
					_, err = io.ReadFull(c, reply)
					if err != nil {
						atomic.AddInt64(&failed, 1)
					}
				} else {
					atomic.AddInt64(&failed, 1)
				}
				c.SetDeadline(time.Time{})
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	openSec := time.Since(start).Seconds()
	time.Sleep(1 * time.Second)
	rss1 := rssKiB(*pid)
	during := latencyOf(*target, *pings)
	open := 0
	for _, c := range conns {
		if c != nil {
			open++
		}
	}
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	emit(map[string]interface{}{
		"sessions": open, "failed": failed, "open_seconds": openSec, "opened_per_second": float64(open) / openSec,
		"rss_before_kib": rss0, "rss_after_kib": rss1,
		"rss_per_session_bytes": float64(rss1-rss0) * 1024 / float64(max1(open)),
		"latency_alone":         before, "latency_among": during,
	})
}

func max1(v int) int {
	if v < 1 {
		return 1
	}
	return v
}

// ---------------------------------------------------------------- pingpong

// pingpongMain: one TCP connection (TCP_NODELAY); write -size bytes, read exactly -size bytes back,
// again and again for -duration seconds after -warmup seconds of the same (not recorded). Each round
// trip is timed with the monotonic clock (time.Now carries it; time.Since uses it).
func pingpongMain(args []string) {
	fs := flag.NewFlagSet("pingpong", flag.ExitOnError)
	target := fs.String("target", "", "address")
	size := fs.Int("size", 64, "bytes per message")
	duration := fs.Float64("duration", 3, "seconds measured")
	warmup := fs.Float64("warmup", 0.5, "seconds of round trips before measuring (not recorded)")
	timeout := fs.Float64("timeout", 5, "seconds one round trip may take before the run fails")
	fs.Parse(args)
	if *target == "" || *size < 1 || *duration <= 0 {
		die("pingpong: need -target, -size ≥ 1 and -duration > 0")
	}
	c, err := net.DialTimeout("tcp", *target, 5*time.Second)
	if err != nil {
		die("pingpong: dial %s: %v", *target, err)
	}
	c.(*net.TCPConn).SetNoDelay(true)
	// Blocking raw syscalls on a blocking descriptor (see rawRead): no netpoller, no runtime handoffs
	// between write and read; SO_RCVTIMEO/SO_SNDTIMEO stand in for deadlines.
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		die("pingpong: %v", err)
	}
	c.Close()
	defer f.Close()
	fd := int(f.Fd())
	tv := syscall.NsecToTimeval(int64(*timeout * float64(time.Second)))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	writeAll := func(b []byte) error {
		for off := 0; off < len(b); {
			n, err := rawWrite(fd, b[off:])
			if err != nil {
				return err
			}
			off += n
		}
		return nil
	}
	readFull := func(b []byte) error {
		for off := 0; off < len(b); {
			n, err := rawRead(fd, b[off:])
			if err == syscall.EAGAIN {
				return fmt.Errorf("no reply within %gs", *timeout)
			}
			if err != nil {
				return err
			}
			if n == 0 {
				return io.ErrUnexpectedEOF
			}
			off += n
		}
		return nil
	}
	msg := make([]byte, *size)
	for i := range msg {
		msg[i] = byte(i)
	}
	reply := make([]byte, *size)
	samples := make([]float64, 0, 1<<16)
	warmed := 0
	trip := func(record bool) {
		t := time.Now()
		if err := writeAll(msg); err != nil {
			die("pingpong: write to %s after %d measured and %d warm-up round trips: %v", *target, len(samples), warmed, err)
		}
		if err := readFull(reply); err != nil {
			die("pingpong: read from %s after %d measured and %d warm-up round trips (nothing came back?): %v",
				*target, len(samples), warmed, err)
		}
		el := time.Since(t)
		if record {
			samples = append(samples, float64(el.Nanoseconds())/1000)
		} else {
			warmed++
		}
	}
	end := time.Now().Add(time.Duration(*warmup * float64(time.Second)))
	for time.Now().Before(end) {
		trip(false)
	}
	end = time.Now().Add(time.Duration(*duration * float64(time.Second)))
	for time.Now().Before(end) {
		trip(true)
	}
	if len(samples) == 0 {
		die("pingpong: no round trip completed with %s", *target)
	}
	sum := 0.0
	for _, v := range samples {
		sum += v
	}
	mean := sum / float64(len(samples))
	sort.Float64s(samples)
	emit(map[string]interface{}{"count": len(samples), "p50_us": pct(samples, 50), "p99_us": pct(samples, 99),
		"p999_us": pct(samples, 99.9), "mean_us": mean, "size": *size, "warmup_count": warmed})
}

// rawRead and rawWrite: read(2)/write(2) on a blocking descriptor without the runtime's syscall
// bookkeeping (RawSyscall: no entersyscall, so sysmon never hands this thread's P to another thread while
// it sleeps in the kernel). Pinned to one CPU under SCHED_FIFO, that handoff and the threads it wakes cost
// ~90 µs per round trip (measured: DIRECT p50 ~110–130 µs with syscall.Read or the netpoller, 23 µs with
// these, the same as sockperf's). The price: the thread keeps the only P while blocked, so with
// GOMAXPROCS=1 nothing else in the process runs meanwhile (echo -blocking serves one connection at a time).
// EINTR (sysmon's preemption signal; SO_RCVTIMEO makes reads return it) is retried.
func rawRead(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, b) }

func rawWrite(fd int, b []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, b) }

func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	for {
		n, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// ---------------------------------------------------------------- sessions

// sessionsMain: -c connections at once, each a ping-pong of -size bytes (write, read the same
// count back) for -duration seconds: many sessions with a message ready at the same time, as
// wrk's keep-alive requests are. Reports exchanges per second and, for each -pid (comma
// separated), the write and read system calls (/proc/PID/io syscw, syscr) and CPU seconds
// (/proc/PID/stat) it spent during the run, per exchange.
func sessionsMain(args []string) {
	fs := flag.NewFlagSet("sessions", flag.ExitOnError)
	target := fs.String("target", "", "address")
	conc := fs.Int("c", 512, "sessions at once")
	size := fs.Int("size", 1024, "bytes per message")
	duration := fs.Float64("duration", 5, "seconds measured")
	pids := fs.String("pid", "", "processes to account, comma separated")
	fs.Parse(args)
	conns := make([]net.Conn, *conc)
	for i := range conns {
		c, err := net.DialTimeout("tcp", *target, 10*time.Second)
		if err != nil {
			die("dial %d: %v", i, err)
		}
		c.(*net.TCPConn).SetNoDelay(true)
		conns[i] = c
	}
	var ids []int
	for _, field := range strings.Split(*pids, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(field)); err == nil {
			ids = append(ids, v)
		}
	}
	type counts struct{ writes, reads, ticks int64 }
	sample := func() []counts {
		out := make([]counts, len(ids))
		for i, id := range ids {
			if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", id)); err == nil {
				for _, line := range strings.Split(string(io), "\n") {
					f := strings.Fields(line)
					if len(f) == 2 && f[0] == "syscw:" {
						out[i].writes, _ = strconv.ParseInt(f[1], 10, 64)
					}
					if len(f) == 2 && f[0] == "syscr:" {
						out[i].reads, _ = strconv.ParseInt(f[1], 10, 64)
					}
				}
			}
			if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", id)); err == nil {
				text := string(stat)
				f := strings.Fields(text[strings.LastIndex(text, ")")+2:])
				utime, _ := strconv.ParseInt(f[11], 10, 64)
				stime, _ := strconv.ParseInt(f[12], 10, 64)
				out[i].ticks = utime + stime
			}
		}
		return out
	}
	var exchanges int64
	var stop int32
	var wg sync.WaitGroup
	// Warm up: one exchange per session before counting.
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			if err := exchange(c, make([]byte, *size), make([]byte, *size)); err != nil {
				die("warm-up exchange: %v", err)
			}
		}(c)
	}
	wg.Wait()
	before := sample()
	start := time.Now()
	for _, c := range conns {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			msg := make([]byte, *size)
			reply := make([]byte, *size)
			for atomic.LoadInt32(&stop) == 0 {
				if err := exchange(c, msg, reply); err != nil {
					die("exchange: %v", err)
				}
				atomic.AddInt64(&exchanges, 1)
			}
		}(c)
	}
	time.Sleep(time.Duration(*duration * float64(time.Second)))
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	after := sample()
	n := float64(atomic.LoadInt64(&exchanges))
	result := map[string]interface{}{"sessions": *conc, "size": *size, "seconds": elapsed, "exchanges": n,
		"exchanges_per_second": n / elapsed}
	var per []map[string]interface{}
	for i, id := range ids {
		per = append(per, map[string]interface{}{
			"pid": id, "writes_per_exchange": float64(after[i].writes-before[i].writes) / n,
			"reads_per_exchange":  float64(after[i].reads-before[i].reads) / n,
			"cpu_us_per_exchange": float64(after[i].ticks-before[i].ticks) * 1e6 / 100 / n,
		})
	}
	result["processes"] = per
	for _, c := range conns {
		c.Close()
	}
	emit(result)
}
